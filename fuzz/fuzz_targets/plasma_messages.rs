//! Every Plasma FlatBuffers message decoder (`plasma_store::wire::messages`), requests and
//! replies, plus the store's request dispatcher, on arbitrary bodies.
//!
//! The first input byte picks the message type, the rest is the body. Properties: no decoder
//! panics (the verifier runs before any field is read); a decoded message re-encodes and
//! decodes back to an equal value (FlatBuffers bytes are not canonical, so only values are
//! compared).
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasma_store::wire::messages::*;
use plasma_store::wire::MessageType;

fn check<M: Message + PartialEq + std::fmt::Debug>(body: &[u8]) {
    let Ok(message) = M::decode(body) else {
        return;
    };
    let encoded = message.encode();
    match M::decode(&encoded) {
        Ok(again) => assert_eq!(again, message, "{:?} changed on a round trip", M::TYPE),
        Err(e) => panic!("{:?}: re-encoded {message:?} does not decode: {e}", M::TYPE),
    }
}

/// Byte strings copied out of a body must fit in it: FlatBuffers offsets may alias, and a
/// decoder that copies each alias turns a small body into a huge allocation.
fn check_batch(body: &[u8]) {
    check::<CreateAndSealBatchRequest>(body);
    if let Ok(batch) = CreateAndSealBatchRequest::decode(body) {
        let data: usize = batch.data.iter().map(Vec::len).sum();
        let metadata: usize = batch.metadata.iter().map(Vec::len).sum();
        assert!(
            data <= body.len() && metadata <= body.len(),
            "amplified {data}+{metadata} bytes from {}",
            body.len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 33 {
        0 => check::<ConnectRequest>(body),
        1 => check::<ConnectReply>(body),
        2 => check::<CreateRequest>(body),
        3 => check::<CreateReply>(body),
        4 => check::<CreateAndSealRequest>(body),
        5 => check::<CreateAndSealReply>(body),
        6 => check_batch(body),
        7 => check::<CreateAndSealBatchReply>(body),
        8 => check::<AbortRequest>(body),
        9 => check::<AbortReply>(body),
        10 => check::<SealRequest>(body),
        11 => check::<SealReply>(body),
        12 => check::<GetRequest>(body),
        13 => check::<GetReply>(body),
        14 => check::<ReleaseRequest>(body),
        15 => check::<ReleaseReply>(body),
        16 => check::<DeleteRequest>(body),
        17 => check::<DeleteReply>(body),
        18 => check::<ContainsRequest>(body),
        19 => check::<ContainsReply>(body),
        20 => check::<ListRequest>(body),
        21 => check::<ListReply>(body),
        22 => check::<Notification>(body),
        23 => check::<EvictRequest>(body),
        24 => check::<EvictReply>(body),
        25 => check::<SubscribeRequest>(body),
        26 => check::<SetOptionsRequest>(body),
        27 => check::<SetOptionsReply>(body),
        28 => check::<GetDebugStringRequest>(body),
        29 => check::<GetDebugStringReply>(body),
        30 => check::<RefreshLruRequest>(body),
        31 => check::<RefreshLruReply>(body),
        _ => {
            // The store's dispatcher, with any message type (replies and unknowns included).
            let Some((&kind, body)) = body.split_first() else {
                return;
            };
            if let Some(kind) = MessageType::from_wire(i64::from(kind % 40)) {
                if let Err(e) = Request::decode(kind, body) {
                    let _ = e.to_string();
                }
            }
        }
    }
});
