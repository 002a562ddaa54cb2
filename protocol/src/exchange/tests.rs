//! The exchange in memory: both machines driven against each other through byte buffers,
//! every step and every failure, without sockets.

use super::policy::Lookup;
use super::*;
use crate::wire::{ObjectHeader, ObjectRequest, StreamRequest};
use crate::{limits, ObjectId, Status, TransferKind};

fn id() -> ObjectId {
    ObjectId::from_bytes([7; 20])
}

fn found(data: &[u8], metadata: &[u8]) -> Lookup {
    Lookup::Found {
        data_size: data.len() as u64,
        metadata_size: metadata.len() as u64,
    }
}

/// The holder's side of a whole exchange up to the Ack: returns the machine and the bytes it
/// sent (header, metadata, data, trailer).
fn holder_sends(request: ObjectRequest, data: &[u8], metadata: &[u8]) -> (ObjectServe, Vec<u8>) {
    let mut serve = ObjectServe::new(request);
    let mut wire = Vec::new();
    serve.check_taken(false).expect("not taken");
    let body = serve
        .check_object(found(data, metadata))
        .expect("checks out");
    serve.encode_header(&mut wire).expect("header");
    wire.extend_from_slice(metadata);
    serve.on_metadata_sent(metadata.len()).expect("metadata");
    let sent = &data[body.offset as usize..];
    // In two pieces, as a driver sends large objects.
    let (first, second) = sent.split_at(sent.len() / 2);
    for piece in [first, second] {
        wire.extend_from_slice(piece);
        serve.on_data_sent(piece).expect("data");
    }
    if serve.wants_trailer() {
        serve.encode_trailer(&mut wire).expect("trailer");
    }
    if serve.wants_object_digest() {
        serve
            .encode_object_digest(*b"PLASMA-D", &mut wire)
            .expect("object digest");
    }
    (serve, wire)
}

/// The puller's side: feeds `wire` byte by byte where a message is read (as a slow stream
/// would deliver it), returns the answer, metadata and data received.
fn puller_receives(
    pull: &mut ObjectPull,
    wire: &[u8],
) -> Result<(Answer, Vec<u8>, Vec<u8>), ExchangeError> {
    let mut at = 0;
    let mut header = Vec::new();
    let answer = loop {
        header.push(*wire.get(at).ok_or_else(|| pull.on_end())?);
        at += 1;
        assert!(
            header.len() <= ObjectPull::header_len(&header),
            "read past the header"
        );
        if let Some((answer, used)) = pull.on_header(&header)? {
            assert_eq!(used, header.len());
            break answer;
        }
    };
    let (mut metadata, mut data) = (Vec::new(), Vec::new());
    loop {
        match pull.next_read() {
            PullRead::Metadata(left) => {
                let take = (left as usize).min(3).min(wire.len() - at);
                if take == 0 {
                    return Err(pull.on_end());
                }
                metadata.extend_from_slice(&wire[at..at + take]);
                pull.on_metadata(take)?;
                at += take;
            }
            PullRead::Data(left) => {
                let take = (left as usize).min(5).min(wire.len() - at);
                if take == 0 {
                    return Err(pull.on_end());
                }
                data.extend_from_slice(&wire[at..at + take]);
                pull.on_data(&wire[at..at + take])?;
                at += take;
            }
            PullRead::Trailer => {
                let used = pull.on_trailer(&wire[at..])?.ok_or_else(|| pull.on_end())?;
                at += used;
            }
            PullRead::Acknowledge | PullRead::Done => break,
            PullRead::Header | PullRead::DeleteResult => unreachable!("not before the Ack"),
        }
    }
    assert_eq!(at, wire.len(), "the puller must read exactly what was sent");
    Ok((answer, metadata, data))
}

#[test]
fn a_copy_moves_the_object_and_keeps_it() {
    let (data, metadata) = (b"0123456789abcdef".to_vec(), b"META".to_vec());
    let mut pull = ObjectPull::new(TransferKind::Copy, id());
    let mut request = Vec::new();
    pull.encode_request(&mut request).expect("request");
    let Ok(Some((StreamRequest::Object(decoded), _))) = StreamRequest::decode(&request) else {
        panic!("the request decodes as an OBJECT request");
    };
    let (mut serve, wire) = holder_sends(decoded, &data, &metadata);
    let (answer, got_meta, got_data) = puller_receives(&mut pull, &wire).expect("received");
    assert_eq!(
        answer,
        Answer::Begin(Body {
            data_size: 16,
            metadata_size: 4,
            offset: 0
        })
    );
    assert_eq!((got_meta, got_data), (metadata, data));
    let mut ack = Vec::new();
    pull.acknowledge(Status::Success, &mut ack).expect("ack");
    assert!(pull.is_done(), "a COPY ends with the Ack");
    assert_eq!(
        serve.on_ack(&ack),
        Ok(Some((AckVerdict::Keep(Status::Success), 1)))
    );
}

#[test]
fn a_take_deletes_only_after_a_success_ack() {
    let (data, metadata) = (vec![9u8; 40], Vec::new());
    let mut pull = ObjectPull::new(TransferKind::Take, id());
    let (mut serve, wire) = holder_sends(*pull.request(), &data, &metadata);
    puller_receives(&mut pull, &wire).expect("received");
    let mut ack = Vec::new();
    pull.acknowledge(Status::Success, &mut ack).expect("ack");
    assert_eq!(pull.next_read(), PullRead::DeleteResult);
    assert_eq!(serve.on_ack(&ack), Ok(Some((AckVerdict::Delete, 1))));
    let mut result = Vec::new();
    serve
        .delete_result(Status::Success, &mut result)
        .expect("result");
    assert_eq!(
        pull.on_delete_result(&result),
        Ok(Some((Status::Success, 1)))
    );
    assert!(pull.is_done());
}

#[test]
fn a_take_whose_puller_failed_keeps_the_object() {
    let data = vec![1u8; 8];
    let mut pull = ObjectPull::new(TransferKind::Take, id());
    let (mut serve, wire) = holder_sends(*pull.request(), &data, b"");
    puller_receives(&mut pull, &wire).expect("received");
    let mut ack = Vec::new();
    pull.acknowledge(Status::StoreError, &mut ack)
        .expect("failure ack");
    assert!(pull.is_done(), "no delete result follows a failure");
    assert_eq!(
        serve.on_ack(&ack),
        Ok(Some((AckVerdict::Keep(Status::StoreError), 1)))
    );
    assert!(serve
        .delete_result(Status::Success, &mut Vec::new())
        .is_err());
}

#[test]
fn a_late_ack_deletes_nothing() {
    let mut pull = ObjectPull::new(TransferKind::Take, id());
    let (mut serve, wire) = holder_sends(*pull.request(), b"abc", b"");
    puller_receives(&mut pull, &wire).expect("received");
    assert_eq!(
        serve.on_ack_timeout(),
        AckVerdict::Keep(Status::PeerConnectionFailed)
    );
    let mut ack = Vec::new();
    pull.acknowledge(Status::Success, &mut ack).expect("ack");
    assert_eq!(serve.on_ack(&ack), Err(ExchangeError::LateAck));
    assert!(serve
        .delete_result(Status::Success, &mut Vec::new())
        .is_err());
}

#[test]
fn an_ack_before_the_body_was_sent_is_out_of_order() {
    let mut serve = ObjectServe::new(ObjectRequest::new(TransferKind::Take, id()));
    serve.check_taken(false).expect("free");
    serve.check_object(found(b"abcdef", b"")).expect("found");
    serve.encode_header(&mut Vec::new()).expect("header");
    serve.on_data_sent(b"abc").expect("half");
    let early = serve.on_ack(&[Status::Success.code()]);
    assert!(
        matches!(early, Err(ExchangeError::OutOfOrder { .. })),
        "{early:?}"
    );
}

#[test]
fn a_bad_ack_is_refused_and_deletes_nothing() {
    for bad in [Status::Begin.code(), 0xEE] {
        let mut pull = ObjectPull::new(TransferKind::Take, id());
        let (mut serve, wire) = holder_sends(*pull.request(), b"abc", b"m");
        puller_receives(&mut pull, &wire).expect("received");
        let verdict = serve.on_ack(&[bad]);
        assert!(
            matches!(verdict, Err(ExchangeError::Decode(_))),
            "{bad:#x}: {verdict:?}"
        );
    }
}

#[test]
fn a_success_ack_needs_the_whole_body() {
    let mut pull = ObjectPull::new(TransferKind::Take, id());
    let (_serve, wire) = holder_sends(*pull.request(), b"abcdef", b"");
    let header_len = ObjectHeader::BEGIN_LEN;
    pull.on_header(&wire[..header_len]).expect("header");
    pull.on_data(&wire[header_len..header_len + 2])
        .expect("part");
    let early = pull.acknowledge(Status::Success, &mut Vec::new());
    assert!(
        matches!(early, Err(ExchangeError::OutOfOrder { .. })),
        "{early:?}"
    );
    // Giving up early is allowed, and ends the exchange.
    pull.acknowledge(Status::StoreError, &mut Vec::new())
        .expect("give up");
    assert!(pull.is_done());
}

#[test]
fn a_short_body_is_reported_with_what_arrived() {
    let mut pull = ObjectPull::new(TransferKind::Copy, id());
    let (_serve, wire) = holder_sends(*pull.request(), &[5u8; 30], b"meta");
    let cut = wire.len() - 10;
    let error = puller_receives(&mut pull, &wire[..cut]).expect_err("short");
    assert_eq!(
        error,
        ExchangeError::ShortBody {
            expected: 34,
            received: 24
        }
    );
}

#[test]
fn a_body_longer_than_announced_is_an_overrun() {
    let mut pull = ObjectPull::new(TransferKind::Copy, id());
    let (_serve, wire) = holder_sends(*pull.request(), b"abcd", b"");
    pull.on_header(&wire[..ObjectHeader::BEGIN_LEN])
        .expect("header");
    let error = pull.on_data(b"abcdefgh").expect_err("overrun");
    assert_eq!(error, ExchangeError::Overrun { expected: 4 });
}

#[test]
fn an_oversize_header_is_refused_before_anything_is_allocated() {
    let mut pull = ObjectPull::new(TransferKind::Copy, id());
    let mut header = vec![Status::Begin.code()];
    header.extend((limits::MAX_DATA_SIZE + 1).to_le_bytes());
    header.extend(0u64.to_le_bytes());
    header.extend(0u64.to_le_bytes());
    assert!(matches!(
        pull.on_header(&header),
        Err(ExchangeError::Decode(_))
    ));
    let mut pull = ObjectPull::new(TransferKind::Copy, id());
    let mut header = vec![Status::Begin.code()];
    header.extend(1u64.to_le_bytes());
    header.extend((limits::MAX_METADATA_SIZE + 1).to_le_bytes());
    header.extend(0u64.to_le_bytes());
    assert!(matches!(
        pull.on_header(&header),
        Err(ExchangeError::Decode(_))
    ));
}

#[test]
fn the_header_is_read_without_reading_past_it() {
    assert_eq!(ObjectPull::header_len(&[]), 1);
    assert_eq!(ObjectPull::header_len(&[Status::NotFound.code()]), 1);
    assert_eq!(
        ObjectPull::header_len(&[Status::Begin.code()]),
        ObjectHeader::BEGIN_LEN
    );
    let mut pull = ObjectPull::new(TransferKind::Copy, id());
    assert_eq!(pull.on_header(&[Status::Begin.code(), 1, 2]), Ok(None));
}

#[test]
fn a_refusal_ends_the_exchange_with_its_status() {
    for (taken, lookup, status) in [
        (true, Lookup::Missing, Status::BeingDeleted),
        (false, Lookup::Missing, Status::NotFound),
        (false, Lookup::StoreFailed, Status::StoreError),
    ] {
        let mut serve = ObjectServe::new(ObjectRequest::new(TransferKind::Copy, id()));
        let refused = serve
            .check_taken(taken)
            .and_then(|()| serve.check_object(lookup).map(|_| ()));
        assert_eq!(refused, Err(status));
        let mut wire = Vec::new();
        ObjectServe::encode_refusal(status, &mut wire).expect("refusal");
        let mut pull = ObjectPull::new(TransferKind::Copy, id());
        assert_eq!(
            pull.on_header(&wire),
            Ok(Some((Answer::Refused(status), 1)))
        );
        assert!(pull.is_done());
        assert!(pull.acknowledge(Status::Success, &mut Vec::new()).is_err());
    }
}

#[test]
fn a_resume_receives_only_the_rest() {
    let data: Vec<u8> = (0..100u8).collect();
    let mut pull = ObjectPull::resume(TransferKind::Copy, id(), 60, 100, 2);
    assert_eq!(pull.request().resume_offset, 60);
    let (_serve, wire) = holder_sends(*pull.request(), &data, b"mm");
    let (answer, metadata, rest) = puller_receives(&mut pull, &wire).expect("resumed");
    assert_eq!(
        answer,
        Answer::Begin(Body {
            data_size: 100,
            metadata_size: 2,
            offset: 60
        })
    );
    assert_eq!(metadata, b"mm");
    assert_eq!(rest, &data[60..]);
}

#[test]
fn a_resume_refuses_an_object_that_changed() {
    let mut pull = ObjectPull::resume(TransferKind::Copy, id(), 60, 100, 2);
    let (_serve, wire) = holder_sends(*pull.request(), &[0u8; 120], b"mm");
    let error = puller_receives(&mut pull, &wire).expect_err("changed");
    assert!(
        matches!(error, ExchangeError::ObjectChanged { data_size: 120, .. }),
        "{error:?}"
    );
}

#[test]
fn a_holder_may_restart_from_zero_but_not_elsewhere() {
    let mut restart = ObjectPull::resume(TransferKind::Copy, id(), 60, 100, 0);
    let mut header = Vec::new();
    ObjectHeader::begin(100, 0)
        .encode(&mut header)
        .expect("header");
    assert!(matches!(
        restart.on_header(&header),
        Ok(Some((Answer::Begin(Body { offset: 0, .. }), _)))
    ));
    assert_eq!(restart.next_read(), PullRead::Data(100));

    let mut elsewhere = ObjectPull::resume(TransferKind::Copy, id(), 60, 100, 0);
    let mut header = Vec::new();
    ObjectHeader::Begin {
        data_size: 100,
        metadata_size: 0,
        offset: 30,
    }
    .encode(&mut header)
    .expect("header");
    assert_eq!(
        elsewhere.on_header(&header),
        Err(ExchangeError::UnexpectedOffset {
            asked: 60,
            answered: 30
        })
    );
}

#[test]
fn a_resume_offset_past_the_data_is_refused_by_the_holder() {
    let mut request = ObjectRequest::new(TransferKind::Copy, id());
    request.resume_offset = 11;
    let mut serve = ObjectServe::new(request);
    serve.check_taken(false).expect("free");
    assert_eq!(
        serve.check_object(found(&[0; 10], b"")),
        Err(Status::PeerRequestFailed)
    );
}

#[test]
fn the_digest_trailer_is_checked() {
    let data = vec![3u8; 64];
    let mut pull = ObjectPull::new(TransferKind::Copy, id()).with_digest_trailer();
    let (_serve, wire) = holder_sends(*pull.request(), &data, b"");
    puller_receives(&mut pull, &wire).expect("matching digest");
    assert_eq!(pull.next_read(), PullRead::Acknowledge);

    let mut pull = ObjectPull::new(TransferKind::Copy, id()).with_digest_trailer();
    let (_serve, mut wire) = holder_sends(*pull.request(), &data, b"");
    let at = ObjectHeader::BEGIN_LEN + 5;
    wire[at] ^= 0xFF; // one byte changed on the way
    let error = puller_receives(&mut pull, &wire).expect_err("mismatch");
    assert!(
        matches!(error, ExchangeError::DigestMismatch { .. }),
        "{error:?}"
    );
}

#[test]
fn empty_bodies_go_straight_to_the_ack() {
    let mut pull = ObjectPull::new(TransferKind::Copy, id());
    let (_serve, wire) = holder_sends(*pull.request(), b"", b"");
    puller_receives(&mut pull, &wire).expect("empty");
    assert_eq!(pull.next_read(), PullRead::Acknowledge);
}

#[test]
fn a_holder_cannot_send_more_than_it_announced() {
    let mut serve = ObjectServe::new(ObjectRequest::new(TransferKind::Copy, id()));
    serve.check_taken(false).expect("free");
    serve.check_object(found(b"abc", b"m")).expect("found");
    serve.encode_header(&mut Vec::new()).expect("header");
    assert!(matches!(
        serve.on_metadata_sent(2),
        Err(ExchangeError::Overrun { .. })
    ));
}

#[test]
fn the_end_of_the_stream_means_what_the_step_says() {
    let mut pull = ObjectPull::new(TransferKind::Take, id());
    assert_eq!(
        pull.on_end(),
        ExchangeError::Truncated {
            message: "holder's header"
        }
    );
    let mut pull = ObjectPull::new(TransferKind::Take, id());
    let (_serve, wire) = holder_sends(*pull.request(), b"x", b"");
    puller_receives(&mut pull, &wire).expect("received");
    pull.acknowledge(Status::Success, &mut Vec::new())
        .expect("ack");
    assert_eq!(
        pull.on_end(),
        ExchangeError::Truncated {
            message: "delete result"
        }
    );
}

#[test]
fn a_resume_can_ask_for_the_whole_objects_digest() {
    let data: Vec<u8> = (0..50u8).collect();
    let mut pull = ObjectPull::resume(TransferKind::Take, id(), 20, 50, 0).with_object_digest();
    assert!(pull.request().object_digest && !pull.request().digest_trailer);
    let (mut serve, wire) = holder_sends(*pull.request(), &data, b"");
    let (_, _, rest) = puller_receives(&mut pull, &wire).expect("resumed");
    assert_eq!(rest, &data[20..]);
    assert_eq!(pull.holder_object_digest(), Some(*b"PLASMA-D"));
    let mut ack = Vec::new();
    pull.acknowledge(Status::Success, &mut ack).expect("ack");
    assert_eq!(serve.on_ack(&ack), Ok(Some((AckVerdict::Delete, 1))));
}

#[test]
fn one_exchange_has_one_trailer() {
    let mut request = ObjectRequest::new(TransferKind::Copy, id());
    request.digest_trailer = true;
    request.object_digest = true;
    assert!(request.encode(&mut Vec::new()).is_err());
    let mut bytes = Vec::new();
    ObjectRequest::new(TransferKind::Copy, id())
        .encode(&mut bytes)
        .expect("plain request");
    if let Some(flags) = bytes.last_mut() {
        *flags = 0x03;
    }
    assert!(ObjectRequest::decode(&bytes).is_err());
}
