//! The FlatBuffers messages of Arrow 11's `plasma.fbs` / `common.fbs` (`docs/plasma.md` §3),
//! encoded and decoded in both directions, so the client and the embedded store share one
//! codec.
//!
//! Encoding uses the `flatbuffers` builder. Decoding first runs the `flatbuffers` verifier over
//! the whole body, with the exact field types of each table, and only then reads fields by
//! vtable slot: a malformed or truncated body is a [`WireError`], never a panic. Scalars that
//! are absent read as their default (0 / false), as FlatBuffers builders omit defaults.
//!
//! Object IDs are FlatBuffers `string`s holding 20 raw bytes (not UTF-8); they are read as
//! byte vectors and must be exactly 20 bytes. Digests must be exactly 8 bytes (the real store
//! aborts otherwise). The presence rules of `docs/plasma.md` §3 are followed when encoding
//! (fields the C++ readers dereference without a null check are always written) and enforced
//! when decoding.

use flatbuffers::{
    FlatBufferBuilder, Follow, ForwardsUOffset, InvalidFlatbuffer, Push, PushAlignment,
    SimpleToVerifyInSlice, Table, VOffsetT, Vector, Verifiable, Verifier, VerifierOptions,
    WIPOffset,
};

use super::{MessageType, WireError};
use crate::ObjectId;

// ---------------------------------------------------------------------------------------------
// Value types shared by several messages
// ---------------------------------------------------------------------------------------------

/// `enum PlasmaError : int32`. The C++ client maps only 0..=3 (4 and 5 make it abort), so
/// stores must only send `ObjectNotSealed` / `ObjectInUse` inside `DeleteReply.errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(i32)]
pub enum PlasmaError {
    #[default]
    Ok = 0,
    ObjectExists = 1,
    ObjectNotFound = 2,
    OutOfMemory = 3,
    ObjectNotSealed = 4,
    ObjectInUse = 5,
}

impl PlasmaError {
    /// The error with this wire value, if defined.
    pub fn from_wire(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::Ok,
            1 => Self::ObjectExists,
            2 => Self::ObjectNotFound,
            3 => Self::OutOfMemory,
            4 => Self::ObjectNotSealed,
            5 => Self::ObjectInUse,
            _ => return None,
        })
    }

    pub fn to_wire(self) -> i32 {
        self as i32
    }
}

/// `struct PlasmaObjectSpec` (48 bytes, align 8): where an object lives in shared memory.
///
/// `segment_key` is the store's opaque key of the segment (the wire calls it `segment_index`;
/// it equals `CreateReply.store_fd` / the `GetReply.store_fds` entry). A `data_size` of
/// `u64::MAX` means "not available" (see [`ObjectSpec::MISSING`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ObjectSpec {
    pub segment_key: i32,
    pub data_offset: u64,
    pub data_size: u64,
    pub metadata_offset: u64,
    pub metadata_size: u64,
    pub device_num: i32,
}

impl ObjectSpec {
    /// What the store sends for an object that was not sealed in time: `data_size = -1`, every
    /// other field zero.
    pub const MISSING: ObjectSpec = ObjectSpec {
        segment_key: 0,
        data_offset: 0,
        data_size: u64::MAX,
        metadata_offset: 0,
        metadata_size: 0,
        device_num: 0,
    };

    /// Whether this spec says "object not available".
    pub fn is_missing(&self) -> bool {
        self.data_size == u64::MAX
    }

    fn to_raw(self) -> SpecRaw {
        let mut b = [0u8; SPEC_LEN];
        b[0..4].copy_from_slice(&self.segment_key.to_le_bytes());
        b[8..16].copy_from_slice(&self.data_offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.data_size.to_le_bytes());
        b[24..32].copy_from_slice(&self.metadata_offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.metadata_size.to_le_bytes());
        b[40..44].copy_from_slice(&self.device_num.to_le_bytes());
        SpecRaw(b)
    }

    fn from_raw(raw: &SpecRaw) -> Self {
        let b = &raw.0;
        let i32_at = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
        ObjectSpec {
            segment_key: i32_at(0),
            data_offset: u64_at(8),
            data_size: u64_at(16),
            metadata_offset: u64_at(24),
            metadata_size: u64_at(32),
            device_num: i32_at(40),
        }
    }
}

/// `table ObjectInfo` (common.fbs): one object as listed by `List` or announced by a
/// notification.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ObjectInfo {
    pub object_id: ObjectId,
    pub data_size: i64,
    pub metadata_size: i64,
    /// Number of *connections* holding the object.
    pub ref_count: i32,
    /// Unix seconds.
    pub create_time: i64,
    /// Seconds from create to seal; -1 while unsealed.
    pub construct_duration: i64,
    /// `Some` (8 bytes) once sealed; `None` while unsealed (written as "") or in a deletion
    /// notice (written absent).
    pub digest: Option<[u8; 8]>,
    /// Only set in notifications.
    pub is_deletion: bool,
}

// ---------------------------------------------------------------------------------------------
// The messages
// ---------------------------------------------------------------------------------------------

/// A message that travels in one frame of type [`Message::TYPE`].
pub trait Message: Sized {
    const TYPE: MessageType;
    /// The finished FlatBuffer body.
    fn encode(&self) -> Vec<u8>;
    /// Verifies and decodes a body. Never panics on any input.
    fn decode(body: &[u8]) -> Result<Self, WireError>;
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConnectRequest;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConnectReply {
    pub memory_capacity: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CreateRequest {
    pub object_id: ObjectId,
    pub evict_if_full: bool,
    pub data_size: u64,
    pub metadata_size: u64,
    pub device_num: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CreateReply {
    pub object_id: ObjectId,
    pub object: ObjectSpec,
    pub error: PlasmaError,
    /// The segment key; an fd follows the reply iff `error == Ok` and the connection has not
    /// received this segment yet.
    pub store_fd: i32,
    pub mmap_size: i64,
    /// `CudaHandle.handle`, only for device objects (never on the CPU-only pyarrow build).
    pub ipc_handle: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CreateAndSealRequest {
    pub object_id: ObjectId,
    pub evict_if_full: bool,
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    pub digest: [u8; 8],
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CreateAndSealReply {
    pub error: PlasmaError,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CreateAndSealBatchRequest {
    pub object_ids: Vec<ObjectId>,
    pub evict_if_full: bool,
    pub data: Vec<Vec<u8>>,
    pub metadata: Vec<Vec<u8>>,
    pub digests: Vec<[u8; 8]>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CreateAndSealBatchReply {
    pub error: PlasmaError,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AbortRequest {
    pub object_id: ObjectId,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AbortReply {
    pub object_id: ObjectId,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SealRequest {
    pub object_id: ObjectId,
    pub digest: [u8; 8],
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SealReply {
    pub object_id: ObjectId,
    pub error: PlasmaError,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GetRequest {
    pub object_ids: Vec<ObjectId>,
    /// -1 waits forever, 0 does not wait, >0 milliseconds.
    pub timeout_ms: i64,
}

/// One spec per requested id (duplicates included); `store_fds`/`mmap_sizes` list each distinct
/// segment of the found objects in order of first appearance.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GetReply {
    pub object_ids: Vec<ObjectId>,
    pub objects: Vec<ObjectSpec>,
    pub store_fds: Vec<i32>,
    pub mmap_sizes: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ReleaseRequest {
    pub object_id: ObjectId,
}

/// Defined by the schema, never sent by the real store.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ReleaseReply {
    pub object_id: ObjectId,
    pub error: PlasmaError,
}

/// Encoded with `count = object_ids.len()`; decoding requires that equality.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteRequest {
    pub object_ids: Vec<ObjectId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteReply {
    pub object_ids: Vec<ObjectId>,
    pub errors: Vec<PlasmaError>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ContainsRequest {
    pub object_id: ObjectId,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ContainsReply {
    pub object_id: ObjectId,
    pub has_object: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ListRequest;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ListReply {
    pub objects: Vec<ObjectInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EvictRequest {
    pub num_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EvictReply {
    pub num_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SubscribeRequest;

/// The body of a notification (its own framing: an 8-byte native-endian length, no header).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Notification {
    pub object_info: Vec<ObjectInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SetOptionsRequest {
    /// Raw bytes of the FlatBuffers string (pyarrow sends UTF-8).
    pub client_name: Vec<u8>,
    pub output_memory_quota: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SetOptionsReply {
    pub error: PlasmaError,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GetDebugStringRequest;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GetDebugStringReply {
    pub debug_string: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RefreshLruRequest {
    pub object_ids: Vec<ObjectId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RefreshLruReply;

// ---------------------------------------------------------------------------------------------
// FlatBuffers plumbing: the inline struct and verified table views
// ---------------------------------------------------------------------------------------------

const SPEC_LEN: usize = 48;

/// `PlasmaObjectSpec` as raw little-endian bytes (48 bytes, written with 8-byte alignment).
#[derive(Clone, Copy)]
#[repr(transparent)]
struct SpecRaw([u8; SPEC_LEN]);

impl<'a> Follow<'a> for SpecRaw {
    type Inner = SpecRaw;
    unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
        // Only reached after the verifier checked `loc..loc + 48` lies inside `buf`; stay
        // panic-free regardless.
        let mut raw = [0u8; SPEC_LEN];
        if let Some(src) = buf.get(loc..loc.saturating_add(SPEC_LEN)) {
            raw.copy_from_slice(src);
        }
        SpecRaw(raw)
    }
}

impl Verifiable for SpecRaw {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.range_in_buffer(pos, SPEC_LEN)
    }
}

impl SimpleToVerifyInSlice for SpecRaw {}

impl Push for SpecRaw {
    type Output = SpecRaw;
    unsafe fn push(&self, dst: &mut [u8], _written_len: usize) {
        dst[..SPEC_LEN].copy_from_slice(&self.0);
    }
    fn alignment() -> PushAlignment {
        PushAlignment::new(8)
    }
}

/// The vtable slot of field `id` (its declaration index in the schema).
const fn slot(id: u16) -> VOffsetT {
    4 + 2 * id
}

/// Maps a field kind of the macro below to its FlatBuffers type.
macro_rules! fb_type {
    ($a:lifetime, bytes) => { ForwardsUOffset<Vector<$a, u8>> };
    ($a:lifetime, spec) => { SpecRaw };
    ($a:lifetime, vec_bytes) => { ForwardsUOffset<Vector<$a, ForwardsUOffset<Vector<$a, u8>>>> };
    ($a:lifetime, vec_spec) => { ForwardsUOffset<Vector<$a, SpecRaw>> };
    ($a:lifetime, vec_i32) => { ForwardsUOffset<Vector<$a, i32>> };
    ($a:lifetime, vec_i64) => { ForwardsUOffset<Vector<$a, i64>> };
    ($a:lifetime, vec_table $t:ident) => { ForwardsUOffset<Vector<$a, ForwardsUOffset<$t<$a>>>> };
    ($a:lifetime, table $t:ident) => { ForwardsUOffset<$t<$a>> };
    ($a:lifetime, $scalar:ty) => { $scalar };
}

/// Declares a read-only view of one table: a verifier that checks every listed field with its
/// exact type, and one accessor per field. The accessors use `Table::get`, which is sound
/// because the same field list (and so the same types) drove the verifier.
macro_rules! fb_table {
    ($name:ident { $($field:ident : [$($kind:tt)+] = $id:expr),* $(,)? }) => {
        #[derive(Clone, Copy)]
        #[allow(dead_code)]
        struct $name<'a>(Table<'a>);

        impl<'a> Follow<'a> for $name<'a> {
            type Inner = $name<'a>;
            unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
                // SAFETY: callers (the flatbuffers crate) pass a verified table location.
                $name(unsafe { Table::new(buf, loc) })
            }
        }

        impl Verifiable for $name<'_> {
            fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
                #[allow(unused_mut)]
                let mut table = v.visit_table(pos)?;
                $(table = table.visit_field::<fb_type!('_, $($kind)+)>(
                    stringify!($field), slot($id), false)?;)*
                table.finish();
                Ok(())
            }
        }

        #[allow(dead_code)]
        impl<'a> $name<'a> {
            $(fn $field(&self) -> Option<<fb_type!('a, $($kind)+) as Follow<'a>>::Inner> {
                // SAFETY: the verifier checked this slot holds exactly this type.
                unsafe { self.0.get::<fb_type!('a, $($kind)+)>(slot($id), None) }
            })*
        }
    };
}

fb_table!(EmptyT {});
fb_table!(ConnectReplyT {
    memory_capacity: [i64] = 0
});
fb_table!(CreateRequestT {
    object_id: [bytes] = 0,
    evict_if_full: [bool] = 1,
    data_size: [u64] = 2,
    metadata_size: [u64] = 3,
    device_num: [i32] = 4,
});
fb_table!(CudaHandleT {
    handle: [bytes] = 0
});
fb_table!(CreateReplyT {
    object_id: [bytes] = 0,
    plasma_object: [spec] = 1,
    error: [i32] = 2,
    store_fd: [i32] = 3,
    mmap_size: [i64] = 4,
    ipc_handle: [table CudaHandleT] = 5,
});
fb_table!(CreateAndSealRequestT {
    object_id: [bytes] = 0,
    evict_if_full: [bool] = 1,
    data: [bytes] = 2,
    metadata: [bytes] = 3,
    digest: [bytes] = 4,
});
fb_table!(ErrorOnlyT { error: [i32] = 0 });
fb_table!(CreateAndSealBatchRequestT {
    object_ids: [vec_bytes] = 0,
    evict_if_full: [bool] = 1,
    data: [vec_bytes] = 2,
    metadata: [vec_bytes] = 3,
    digest: [vec_bytes] = 4,
});
fb_table!(IdOnlyT {
    object_id: [bytes] = 0
});
fb_table!(IdAndErrorT {
    object_id: [bytes] = 0,
    error: [i32] = 1,
});
fb_table!(SealRequestT {
    object_id: [bytes] = 0,
    digest: [bytes] = 1,
});
fb_table!(GetRequestT {
    object_ids: [vec_bytes] = 0,
    timeout_ms: [i64] = 1,
});
fb_table!(GetReplyT {
    object_ids: [vec_bytes] = 0,
    plasma_objects: [vec_spec] = 1,
    store_fds: [vec_i32] = 2,
    mmap_sizes: [vec_i64] = 3,
    handles: [vec_table CudaHandleT] = 4,
});
fb_table!(DeleteRequestT {
    count: [i32] = 0,
    object_ids: [vec_bytes] = 1,
});
fb_table!(DeleteReplyT {
    count: [i32] = 0,
    object_ids: [vec_bytes] = 1,
    errors: [vec_i32] = 2,
});
fb_table!(ContainsReplyT {
    object_id: [bytes] = 0,
    has_object: [i32] = 1,
});
fb_table!(ObjectInfoT {
    object_id: [bytes] = 0,
    data_size: [i64] = 1,
    metadata_size: [i64] = 2,
    ref_count: [i32] = 3,
    create_time: [i64] = 4,
    construct_duration: [i64] = 5,
    digest: [bytes] = 6,
    is_deletion: [bool] = 7,
});
fb_table!(ObjectInfoListT { objects: [vec_table ObjectInfoT] = 0 });
fb_table!(NumBytesT {
    num_bytes: [u64] = 0
});
fb_table!(SetOptionsRequestT {
    client_name: [bytes] = 0,
    output_memory_quota: [i64] = 1,
});
fb_table!(DebugStringReplyT {
    debug_string: [bytes] = 0
});
fb_table!(IdListT {
    object_ids: [vec_bytes] = 0
});

/// Verifier limits: generous for real traffic (a `ListReply` of a million objects), bounded for
/// hostile input. A body is already capped by the frame reader.
fn verifier_options() -> VerifierOptions {
    VerifierOptions {
        max_depth: 8,
        max_tables: 4_000_000,
        max_apparent_size: usize::MAX / 2,
        ignore_missing_null_terminator: true,
    }
}

/// Verifies `body` as table `T` and returns its view.
fn verified_root<'a, T>(message: MessageType, body: &'a [u8]) -> Result<T, WireError>
where
    T: Follow<'a, Inner = T> + Verifiable + 'a,
{
    flatbuffers::root_with_opts::<T>(&verifier_options(), body)
        .map_err(|source| WireError::InvalidFlatbuffer { message, source })
}

// ---------------------------------------------------------------------------------------------
// Decoding helpers
// ---------------------------------------------------------------------------------------------

fn required<T>(
    value: Option<T>,
    message: MessageType,
    field: &'static str,
) -> Result<T, WireError> {
    value.ok_or(WireError::MissingField { message, field })
}

fn exact<const N: usize>(
    bytes: &[u8],
    message: MessageType,
    field: &'static str,
) -> Result<[u8; N], WireError> {
    <[u8; N]>::try_from(bytes).map_err(|_| WireError::FieldLength {
        message,
        field,
        expected: N,
        got: bytes.len(),
    })
}

fn object_id(
    value: Option<Vector<'_, u8>>,
    message: MessageType,
    field: &'static str,
) -> Result<ObjectId, WireError> {
    let bytes = required(value, message, field)?.bytes();
    exact::<20>(bytes, message, field).map(ObjectId)
}

fn object_ids(
    value: Option<Vector<'_, ForwardsUOffset<Vector<'_, u8>>>>,
    message: MessageType,
    field: &'static str,
) -> Result<Vec<ObjectId>, WireError> {
    required(value, message, field)?
        .iter()
        .map(|id| exact::<20>(id.bytes(), message, field).map(ObjectId))
        .collect()
}

/// Copies a vector of byte strings out of a body of `body_len` bytes.
///
/// FlatBuffers offsets may alias: the verifier accepts a vector whose N offsets all point at
/// one string, so copying element by element could allocate N times that string from a small
/// body (a 1 MiB body could ask for tens of GiB). No buffer without aliasing holds more string
/// bytes than its own length, so more than `body_len` copied bytes is refused.
fn byte_strings(
    value: Option<Vector<'_, ForwardsUOffset<Vector<'_, u8>>>>,
    message: MessageType,
    field: &'static str,
    body_len: usize,
) -> Result<Vec<Vec<u8>>, WireError> {
    let strings = required(value, message, field)?;
    // The verifier checked the vector's 4-byte offsets lie in the body: len() <= body_len / 4.
    let mut copied = Vec::with_capacity(strings.len());
    let mut total = 0usize;
    for string in strings.iter() {
        let bytes = string.bytes();
        total = total.saturating_add(bytes.len());
        if total > body_len {
            return Err(WireError::Inconsistent {
                message,
                detail: format!(
                    "`{field}` strings add up to more than the {body_len}-byte body \
                     (aliased FlatBuffers offsets)"
                ),
            });
        }
        copied.push(bytes.to_vec());
    }
    Ok(copied)
}

fn plasma_error(value: Option<i32>, message: MessageType) -> Result<PlasmaError, WireError> {
    let value = value.unwrap_or(0);
    PlasmaError::from_wire(value).ok_or(WireError::UnknownPlasmaError { message, value })
}

fn object_info(t: ObjectInfoT<'_>, message: MessageType) -> Result<ObjectInfo, WireError> {
    let digest = match t.digest() {
        None => None,
        Some(d) if d.is_empty() => None,
        Some(d) => Some(exact::<8>(d.bytes(), message, "digest")?),
    };
    Ok(ObjectInfo {
        object_id: object_id(t.object_id(), message, "object_id")?,
        data_size: t.data_size().unwrap_or_default(),
        metadata_size: t.metadata_size().unwrap_or_default(),
        ref_count: t.ref_count().unwrap_or_default(),
        create_time: t.create_time().unwrap_or_default(),
        construct_duration: t.construct_duration().unwrap_or_default(),
        digest,
        is_deletion: t.is_deletion().unwrap_or_default(),
    })
}

fn object_infos(
    value: Option<Vector<'_, ForwardsUOffset<ObjectInfoT<'_>>>>,
    message: MessageType,
    field: &'static str,
) -> Result<Vec<ObjectInfo>, WireError> {
    required(value, message, field)?
        .iter()
        .map(|t| object_info(t, message))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------------------------

type Builder<'b> = FlatBufferBuilder<'b>;
type Finished = WIPOffset<flatbuffers::TableFinishedWIPOffset>;

fn finish(mut fbb: Builder<'_>, root: Finished) -> Vec<u8> {
    fbb.finish_minimal(root);
    fbb.finished_data().to_vec()
}

fn id_offsets<'b>(
    fbb: &mut Builder<'b>,
    ids: &[ObjectId],
) -> WIPOffset<Vector<'b, ForwardsUOffset<&'b [u8]>>> {
    let offsets: Vec<_> = ids.iter().map(|id| fbb.create_byte_string(&id.0)).collect();
    fbb.create_vector(&offsets)
}

fn byte_string_vector<'b, S: AsRef<[u8]>>(
    fbb: &mut Builder<'b>,
    items: &[S],
) -> WIPOffset<Vector<'b, ForwardsUOffset<&'b [u8]>>> {
    let offsets: Vec<_> = items
        .iter()
        .map(|s| fbb.create_byte_string(s.as_ref()))
        .collect();
    fbb.create_vector(&offsets)
}

fn encode_empty() -> Vec<u8> {
    let mut fbb = Builder::with_capacity(16);
    let start = fbb.start_table();
    let root = fbb.end_table(start);
    finish(fbb, root)
}

fn encode_id_only(id: &ObjectId) -> Vec<u8> {
    let mut fbb = Builder::with_capacity(64);
    let oid = fbb.create_byte_string(&id.0);
    let start = fbb.start_table();
    fbb.push_slot_always(slot(0), oid);
    let root = fbb.end_table(start);
    finish(fbb, root)
}

fn encode_id_and_error(id: &ObjectId, error: PlasmaError) -> Vec<u8> {
    let mut fbb = Builder::with_capacity(64);
    let oid = fbb.create_byte_string(&id.0);
    let start = fbb.start_table();
    fbb.push_slot_always(slot(0), oid);
    fbb.push_slot(slot(1), error.to_wire(), 0);
    let root = fbb.end_table(start);
    finish(fbb, root)
}

fn encode_error_only(error: PlasmaError) -> Vec<u8> {
    let mut fbb = Builder::with_capacity(32);
    let start = fbb.start_table();
    fbb.push_slot(slot(0), error.to_wire(), 0);
    let root = fbb.end_table(start);
    finish(fbb, root)
}

fn encode_id_list(ids: &[ObjectId]) -> Vec<u8> {
    let mut fbb = Builder::with_capacity(64 + 32 * ids.len());
    let ids = id_offsets(&mut fbb, ids);
    let start = fbb.start_table();
    fbb.push_slot_always(slot(0), ids);
    let root = fbb.end_table(start);
    finish(fbb, root)
}

fn encode_num_bytes(num_bytes: u64) -> Vec<u8> {
    let mut fbb = Builder::with_capacity(32);
    let start = fbb.start_table();
    fbb.push_slot(slot(0), num_bytes, 0);
    let root = fbb.end_table(start);
    finish(fbb, root)
}

fn build_object_info<'b>(
    fbb: &mut Builder<'b>,
    info: &ObjectInfo,
) -> WIPOffset<flatbuffers::TableFinishedWIPOffset> {
    let oid = fbb.create_byte_string(&info.object_id.0);
    let digest = match (&info.digest, info.is_deletion) {
        (Some(d), _) => Some(fbb.create_byte_string(d)),
        // List needs "" for unsealed objects; deletion notices leave it out.
        (None, false) => Some(fbb.create_byte_string(b"")),
        (None, true) => None,
    };
    let start = fbb.start_table();
    fbb.push_slot_always(slot(0), oid);
    fbb.push_slot(slot(1), info.data_size, 0);
    fbb.push_slot(slot(2), info.metadata_size, 0);
    fbb.push_slot(slot(3), info.ref_count, 0);
    fbb.push_slot(slot(4), info.create_time, 0);
    fbb.push_slot(slot(5), info.construct_duration, 0);
    if let Some(d) = digest {
        fbb.push_slot_always(slot(6), d);
    }
    fbb.push_slot(slot(7), info.is_deletion, false);
    fbb.end_table(start)
}

fn encode_object_info_list(objects: &[ObjectInfo]) -> Vec<u8> {
    let mut fbb = Builder::with_capacity(64 + 128 * objects.len());
    let tables: Vec<_> = objects
        .iter()
        .map(|info| build_object_info(&mut fbb, info))
        .collect();
    let vector = fbb.create_vector(&tables);
    let start = fbb.start_table();
    fbb.push_slot_always(slot(0), vector);
    let root = fbb.end_table(start);
    finish(fbb, root)
}

// ---------------------------------------------------------------------------------------------
// Message implementations
// ---------------------------------------------------------------------------------------------

impl Message for ConnectRequest {
    const TYPE: MessageType = MessageType::ConnectRequest;
    fn encode(&self) -> Vec<u8> {
        encode_empty()
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        verified_root::<EmptyT>(Self::TYPE, body)?;
        Ok(ConnectRequest)
    }
}

impl Message for ConnectReply {
    const TYPE: MessageType = MessageType::ConnectReply;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(32);
        let start = fbb.start_table();
        fbb.push_slot(slot(0), self.memory_capacity, 0);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<ConnectReplyT>(Self::TYPE, body)?;
        Ok(ConnectReply {
            memory_capacity: t.memory_capacity().unwrap_or_default(),
        })
    }
}

impl Message for CreateRequest {
    const TYPE: MessageType = MessageType::CreateRequest;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(96);
        let oid = fbb.create_byte_string(&self.object_id.0);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), oid);
        fbb.push_slot(slot(1), self.evict_if_full, false);
        fbb.push_slot(slot(2), self.data_size, 0);
        fbb.push_slot(slot(3), self.metadata_size, 0);
        fbb.push_slot(slot(4), self.device_num, 0);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<CreateRequestT>(Self::TYPE, body)?;
        Ok(CreateRequest {
            object_id: object_id(t.object_id(), Self::TYPE, "object_id")?,
            evict_if_full: t.evict_if_full().unwrap_or_default(),
            data_size: t.data_size().unwrap_or_default(),
            metadata_size: t.metadata_size().unwrap_or_default(),
            device_num: t.device_num().unwrap_or_default(),
        })
    }
}

impl Message for CreateReply {
    const TYPE: MessageType = MessageType::CreateReply;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(160);
        let oid = fbb.create_byte_string(&self.object_id.0);
        let handle = self.ipc_handle.as_ref().map(|h| {
            let bytes = fbb.create_vector(h);
            let start = fbb.start_table();
            fbb.push_slot_always(slot(0), bytes);
            fbb.end_table(start)
        });
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), oid);
        fbb.push_slot_always(slot(1), self.object.to_raw());
        fbb.push_slot(slot(2), self.error.to_wire(), 0);
        fbb.push_slot(slot(3), self.store_fd, 0);
        fbb.push_slot(slot(4), self.mmap_size, 0);
        if let Some(handle) = handle {
            fbb.push_slot_always(slot(5), handle);
        }
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<CreateReplyT>(Self::TYPE, body)?;
        Ok(CreateReply {
            object_id: object_id(t.object_id(), Self::TYPE, "object_id")?,
            object: ObjectSpec::from_raw(&required(
                t.plasma_object(),
                Self::TYPE,
                "plasma_object",
            )?),
            error: plasma_error(t.error(), Self::TYPE)?,
            store_fd: t.store_fd().unwrap_or_default(),
            mmap_size: t.mmap_size().unwrap_or_default(),
            ipc_handle: t
                .ipc_handle()
                .and_then(|h| h.handle())
                .map(|h| h.bytes().to_vec()),
        })
    }
}

impl Message for CreateAndSealRequest {
    const TYPE: MessageType = MessageType::CreateAndSealRequest;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(128 + self.data.len() + self.metadata.len());
        let oid = fbb.create_byte_string(&self.object_id.0);
        let data = fbb.create_byte_string(&self.data);
        let metadata = fbb.create_byte_string(&self.metadata);
        let digest = fbb.create_byte_string(&self.digest);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), oid);
        fbb.push_slot(slot(1), self.evict_if_full, false);
        fbb.push_slot_always(slot(2), data);
        fbb.push_slot_always(slot(3), metadata);
        fbb.push_slot_always(slot(4), digest);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let m = Self::TYPE;
        let t = verified_root::<CreateAndSealRequestT>(m, body)?;
        Ok(CreateAndSealRequest {
            object_id: object_id(t.object_id(), m, "object_id")?,
            evict_if_full: t.evict_if_full().unwrap_or_default(),
            data: required(t.data(), m, "data")?.bytes().to_vec(),
            metadata: required(t.metadata(), m, "metadata")?.bytes().to_vec(),
            digest: exact::<8>(required(t.digest(), m, "digest")?.bytes(), m, "digest")?,
        })
    }
}

impl Message for CreateAndSealReply {
    const TYPE: MessageType = MessageType::CreateAndSealReply;
    fn encode(&self) -> Vec<u8> {
        encode_error_only(self.error)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<ErrorOnlyT>(Self::TYPE, body)?;
        Ok(CreateAndSealReply {
            error: plasma_error(t.error(), Self::TYPE)?,
        })
    }
}

impl Message for CreateAndSealBatchRequest {
    const TYPE: MessageType = MessageType::CreateAndSealBatchRequest;
    fn encode(&self) -> Vec<u8> {
        let payload: usize = self.data.iter().chain(&self.metadata).map(Vec::len).sum();
        let mut fbb = Builder::with_capacity(128 + payload + 48 * self.object_ids.len());
        let ids = id_offsets(&mut fbb, &self.object_ids);
        let data = byte_string_vector(&mut fbb, &self.data);
        let metadata = byte_string_vector(&mut fbb, &self.metadata);
        let digests = byte_string_vector(&mut fbb, &self.digests);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), ids);
        fbb.push_slot(slot(1), self.evict_if_full, false);
        fbb.push_slot_always(slot(2), data);
        fbb.push_slot_always(slot(3), metadata);
        fbb.push_slot_always(slot(4), digests);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let m = Self::TYPE;
        let t = verified_root::<CreateAndSealBatchRequestT>(m, body)?;
        let object_ids = object_ids(t.object_ids(), m, "object_ids")?;
        let data = byte_strings(t.data(), m, "data", body.len())?;
        let metadata = byte_strings(t.metadata(), m, "metadata", body.len())?;
        let digests = required(t.digest(), m, "digest")?
            .iter()
            .map(|d| exact::<8>(d.bytes(), m, "digest"))
            .collect::<Result<Vec<_>, _>>()?;
        let n = object_ids.len();
        if data.len() != n || metadata.len() != n || digests.len() != n {
            return Err(WireError::Inconsistent {
                message: m,
                detail: format!(
                    "{n} ids but {} data, {} metadata and {} digests",
                    data.len(),
                    metadata.len(),
                    digests.len()
                ),
            });
        }
        Ok(CreateAndSealBatchRequest {
            object_ids,
            evict_if_full: t.evict_if_full().unwrap_or_default(),
            data,
            metadata,
            digests,
        })
    }
}

impl Message for CreateAndSealBatchReply {
    const TYPE: MessageType = MessageType::CreateAndSealBatchReply;
    fn encode(&self) -> Vec<u8> {
        encode_error_only(self.error)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<ErrorOnlyT>(Self::TYPE, body)?;
        Ok(CreateAndSealBatchReply {
            error: plasma_error(t.error(), Self::TYPE)?,
        })
    }
}

/// Messages that are just `{ 0 object_id string }`.
macro_rules! id_only_message {
    ($ty:ident, $kind:ident) => {
        impl Message for $ty {
            const TYPE: MessageType = MessageType::$kind;
            fn encode(&self) -> Vec<u8> {
                encode_id_only(&self.object_id)
            }
            fn decode(body: &[u8]) -> Result<Self, WireError> {
                let t = verified_root::<IdOnlyT>(Self::TYPE, body)?;
                Ok($ty {
                    object_id: object_id(t.object_id(), Self::TYPE, "object_id")?,
                })
            }
        }
    };
}

id_only_message!(AbortRequest, AbortRequest);
id_only_message!(AbortReply, AbortReply);
id_only_message!(ReleaseRequest, ReleaseRequest);
id_only_message!(ContainsRequest, ContainsRequest);

/// Messages that are `{ 0 object_id string; 1 error PlasmaError }`.
macro_rules! id_and_error_message {
    ($ty:ident, $kind:ident) => {
        impl Message for $ty {
            const TYPE: MessageType = MessageType::$kind;
            fn encode(&self) -> Vec<u8> {
                encode_id_and_error(&self.object_id, self.error)
            }
            fn decode(body: &[u8]) -> Result<Self, WireError> {
                let t = verified_root::<IdAndErrorT>(Self::TYPE, body)?;
                Ok($ty {
                    object_id: object_id(t.object_id(), Self::TYPE, "object_id")?,
                    error: plasma_error(t.error(), Self::TYPE)?,
                })
            }
        }
    };
}

id_and_error_message!(SealReply, SealReply);
id_and_error_message!(ReleaseReply, ReleaseReply);

impl Message for SealRequest {
    const TYPE: MessageType = MessageType::SealRequest;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(96);
        let oid = fbb.create_byte_string(&self.object_id.0);
        let digest = fbb.create_byte_string(&self.digest);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), oid);
        fbb.push_slot_always(slot(1), digest);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let m = Self::TYPE;
        let t = verified_root::<SealRequestT>(m, body)?;
        Ok(SealRequest {
            object_id: object_id(t.object_id(), m, "object_id")?,
            digest: exact::<8>(required(t.digest(), m, "digest")?.bytes(), m, "digest")?,
        })
    }
}

impl Message for GetRequest {
    const TYPE: MessageType = MessageType::GetRequest;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(64 + 32 * self.object_ids.len());
        let ids = id_offsets(&mut fbb, &self.object_ids);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), ids);
        fbb.push_slot(slot(1), self.timeout_ms, 0);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<GetRequestT>(Self::TYPE, body)?;
        Ok(GetRequest {
            object_ids: object_ids(t.object_ids(), Self::TYPE, "object_ids")?,
            timeout_ms: t.timeout_ms().unwrap_or_default(),
        })
    }
}

impl Message for GetReply {
    const TYPE: MessageType = MessageType::GetReply;
    fn encode(&self) -> Vec<u8> {
        let n = self.object_ids.len();
        let mut fbb = Builder::with_capacity(128 + 96 * n);
        let ids = id_offsets(&mut fbb, &self.object_ids);
        let specs: Vec<SpecRaw> = self.objects.iter().map(|s| s.to_raw()).collect();
        let specs = fbb.create_vector(&specs);
        let fds = fbb.create_vector(&self.store_fds);
        let sizes = fbb.create_vector(&self.mmap_sizes);
        let no_handles: [WIPOffset<flatbuffers::TableFinishedWIPOffset>; 0] = [];
        let handles = fbb.create_vector(&no_handles);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), ids);
        fbb.push_slot_always(slot(1), specs);
        fbb.push_slot_always(slot(2), fds);
        fbb.push_slot_always(slot(3), sizes);
        fbb.push_slot_always(slot(4), handles);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let m = Self::TYPE;
        let t = verified_root::<GetReplyT>(m, body)?;
        let object_ids = object_ids(t.object_ids(), m, "object_ids")?;
        let objects: Vec<ObjectSpec> = required(t.plasma_objects(), m, "plasma_objects")?
            .iter()
            .map(|raw| ObjectSpec::from_raw(&raw))
            .collect();
        let store_fds: Vec<i32> = required(t.store_fds(), m, "store_fds")?.iter().collect();
        let mmap_sizes: Vec<i64> = required(t.mmap_sizes(), m, "mmap_sizes")?.iter().collect();
        if objects.len() != object_ids.len() || store_fds.len() != mmap_sizes.len() {
            return Err(WireError::Inconsistent {
                message: m,
                detail: format!(
                    "{} ids but {} specs; {} store_fds but {} mmap_sizes",
                    object_ids.len(),
                    objects.len(),
                    store_fds.len(),
                    mmap_sizes.len()
                ),
            });
        }
        Ok(GetReply {
            object_ids,
            objects,
            store_fds,
            mmap_sizes,
        })
    }
}

impl Message for DeleteRequest {
    const TYPE: MessageType = MessageType::DeleteRequest;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(64 + 32 * self.object_ids.len());
        let ids = id_offsets(&mut fbb, &self.object_ids);
        let start = fbb.start_table();
        fbb.push_slot(slot(0), self.object_ids.len() as i32, 0);
        fbb.push_slot_always(slot(1), ids);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let m = Self::TYPE;
        let t = verified_root::<DeleteRequestT>(m, body)?;
        let object_ids = object_ids(t.object_ids(), m, "object_ids")?;
        let count = t.count().unwrap_or_default();
        if usize::try_from(count).ok() != Some(object_ids.len()) {
            return Err(WireError::Inconsistent {
                message: m,
                detail: format!("count {count} but {} object ids", object_ids.len()),
            });
        }
        Ok(DeleteRequest { object_ids })
    }
}

impl Message for DeleteReply {
    const TYPE: MessageType = MessageType::DeleteReply;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(64 + 40 * self.object_ids.len());
        let ids = id_offsets(&mut fbb, &self.object_ids);
        let errors: Vec<i32> = self.errors.iter().map(|e| e.to_wire()).collect();
        let errors = fbb.create_vector(&errors);
        let start = fbb.start_table();
        fbb.push_slot(slot(0), self.object_ids.len() as i32, 0);
        fbb.push_slot_always(slot(1), ids);
        fbb.push_slot_always(slot(2), errors);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let m = Self::TYPE;
        let t = verified_root::<DeleteReplyT>(m, body)?;
        let object_ids = object_ids(t.object_ids(), m, "object_ids")?;
        let errors = required(t.errors(), m, "errors")?
            .iter()
            .map(|e| plasma_error(Some(e), m))
            .collect::<Result<Vec<_>, _>>()?;
        let count = t.count().unwrap_or_default();
        if usize::try_from(count).ok() != Some(object_ids.len()) || errors.len() != object_ids.len()
        {
            return Err(WireError::Inconsistent {
                message: m,
                detail: format!(
                    "count {count}, {} object ids, {} errors",
                    object_ids.len(),
                    errors.len()
                ),
            });
        }
        Ok(DeleteReply { object_ids, errors })
    }
}

impl Message for ContainsReply {
    const TYPE: MessageType = MessageType::ContainsReply;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(64);
        let oid = fbb.create_byte_string(&self.object_id.0);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), oid);
        fbb.push_slot(slot(1), i32::from(self.has_object), 0);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<ContainsReplyT>(Self::TYPE, body)?;
        Ok(ContainsReply {
            object_id: object_id(t.object_id(), Self::TYPE, "object_id")?,
            has_object: t.has_object().unwrap_or_default() != 0,
        })
    }
}

/// Messages that are empty tables.
macro_rules! empty_message {
    ($ty:ident, $kind:ident) => {
        impl Message for $ty {
            const TYPE: MessageType = MessageType::$kind;
            fn encode(&self) -> Vec<u8> {
                encode_empty()
            }
            fn decode(body: &[u8]) -> Result<Self, WireError> {
                verified_root::<EmptyT>(Self::TYPE, body)?;
                Ok($ty)
            }
        }
    };
}

empty_message!(ListRequest, ListRequest);
empty_message!(SubscribeRequest, SubscribeRequest);
empty_message!(GetDebugStringRequest, GetDebugStringRequest);
empty_message!(RefreshLruReply, RefreshLRUReply);

impl Message for ListReply {
    const TYPE: MessageType = MessageType::ListReply;
    fn encode(&self) -> Vec<u8> {
        encode_object_info_list(&self.objects)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<ObjectInfoListT>(Self::TYPE, body)?;
        Ok(ListReply {
            objects: object_infos(t.objects(), Self::TYPE, "objects")?,
        })
    }
}

impl Message for Notification {
    /// Not a frame type on the wire (notifications have their own framing); kept for errors.
    const TYPE: MessageType = MessageType::Notification;
    fn encode(&self) -> Vec<u8> {
        encode_object_info_list(&self.object_info)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<ObjectInfoListT>(Self::TYPE, body)?;
        Ok(Notification {
            object_info: object_infos(t.objects(), Self::TYPE, "object_info")?,
        })
    }
}

impl Message for EvictRequest {
    const TYPE: MessageType = MessageType::EvictRequest;
    fn encode(&self) -> Vec<u8> {
        encode_num_bytes(self.num_bytes)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<NumBytesT>(Self::TYPE, body)?;
        Ok(EvictRequest {
            num_bytes: t.num_bytes().unwrap_or_default(),
        })
    }
}

impl Message for EvictReply {
    const TYPE: MessageType = MessageType::EvictReply;
    fn encode(&self) -> Vec<u8> {
        encode_num_bytes(self.num_bytes)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<NumBytesT>(Self::TYPE, body)?;
        Ok(EvictReply {
            num_bytes: t.num_bytes().unwrap_or_default(),
        })
    }
}

impl Message for SetOptionsRequest {
    const TYPE: MessageType = MessageType::SetOptionsRequest;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(64 + self.client_name.len());
        let name = fbb.create_byte_string(&self.client_name);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), name);
        fbb.push_slot(slot(1), self.output_memory_quota, 0);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let m = Self::TYPE;
        let t = verified_root::<SetOptionsRequestT>(m, body)?;
        Ok(SetOptionsRequest {
            client_name: required(t.client_name(), m, "client_name")?
                .bytes()
                .to_vec(),
            output_memory_quota: t.output_memory_quota().unwrap_or_default(),
        })
    }
}

impl Message for SetOptionsReply {
    const TYPE: MessageType = MessageType::SetOptionsReply;
    fn encode(&self) -> Vec<u8> {
        encode_error_only(self.error)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<ErrorOnlyT>(Self::TYPE, body)?;
        Ok(SetOptionsReply {
            error: plasma_error(t.error(), Self::TYPE)?,
        })
    }
}

impl Message for GetDebugStringReply {
    const TYPE: MessageType = MessageType::GetDebugStringReply;
    fn encode(&self) -> Vec<u8> {
        let mut fbb = Builder::with_capacity(64 + self.debug_string.len());
        let s = fbb.create_string(&self.debug_string);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), s);
        let root = fbb.end_table(start);
        finish(fbb, root)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let m = Self::TYPE;
        let t = verified_root::<DebugStringReplyT>(m, body)?;
        let bytes = required(t.debug_string(), m, "debug_string")?.bytes();
        Ok(GetDebugStringReply {
            debug_string: String::from_utf8_lossy(bytes).into_owned(),
        })
    }
}

impl Message for RefreshLruRequest {
    const TYPE: MessageType = MessageType::RefreshLRURequest;
    fn encode(&self) -> Vec<u8> {
        encode_id_list(&self.object_ids)
    }
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = verified_root::<IdListT>(Self::TYPE, body)?;
        Ok(RefreshLruRequest {
            object_ids: object_ids(t.object_ids(), Self::TYPE, "object_ids")?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Requests as one enum, for the store's dispatcher
// ---------------------------------------------------------------------------------------------

/// Every request a client may send, decoded. What a store's dispatch loop matches on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Connect(ConnectRequest),
    Create(CreateRequest),
    CreateAndSeal(CreateAndSealRequest),
    CreateAndSealBatch(CreateAndSealBatchRequest),
    Abort(AbortRequest),
    Seal(SealRequest),
    Get(GetRequest),
    Release(ReleaseRequest),
    Delete(DeleteRequest),
    Contains(ContainsRequest),
    List(ListRequest),
    Evict(EvictRequest),
    Subscribe(SubscribeRequest),
    SetOptions(SetOptionsRequest),
    GetDebugString(GetDebugStringRequest),
    RefreshLru(RefreshLruRequest),
}

impl Request {
    /// Decodes a frame received by a store. Reply types and the types the protocol never sends
    /// (0, 12, 24..=27) are `UnexpectedType`-style errors: the store should close that
    /// connection (the real store aborts the whole process instead).
    pub fn decode(kind: MessageType, body: &[u8]) -> Result<Self, WireError> {
        use MessageType as T;
        Ok(match kind {
            T::ConnectRequest => Request::Connect(ConnectRequest::decode(body)?),
            T::CreateRequest => Request::Create(CreateRequest::decode(body)?),
            T::CreateAndSealRequest => Request::CreateAndSeal(CreateAndSealRequest::decode(body)?),
            T::CreateAndSealBatchRequest => {
                Request::CreateAndSealBatch(CreateAndSealBatchRequest::decode(body)?)
            }
            T::AbortRequest => Request::Abort(AbortRequest::decode(body)?),
            T::SealRequest => Request::Seal(SealRequest::decode(body)?),
            T::GetRequest => Request::Get(GetRequest::decode(body)?),
            T::ReleaseRequest => Request::Release(ReleaseRequest::decode(body)?),
            T::DeleteRequest => Request::Delete(DeleteRequest::decode(body)?),
            T::ContainsRequest => Request::Contains(ContainsRequest::decode(body)?),
            T::ListRequest => Request::List(ListRequest::decode(body)?),
            T::EvictRequest => Request::Evict(EvictRequest::decode(body)?),
            T::SubscribeRequest => Request::Subscribe(SubscribeRequest::decode(body)?),
            T::SetOptionsRequest => Request::SetOptions(SetOptionsRequest::decode(body)?),
            T::GetDebugStringRequest => {
                Request::GetDebugString(GetDebugStringRequest::decode(body)?)
            }
            T::RefreshLRURequest => Request::RefreshLru(RefreshLruRequest::decode(body)?),
            other => return Err(WireError::UnknownType(other.to_wire())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 20])
    }

    fn round_trip<M: Message + PartialEq + std::fmt::Debug>(m: M) {
        let body = m.encode();
        let back = M::decode(&body).unwrap_or_else(|e| panic!("{:?}: {e}", M::TYPE));
        assert_eq!(back, m);
        // Every truncation and every single-byte corruption is an error or a value, never a
        // panic.
        for len in 0..body.len() {
            let _ = M::decode(&body[..len]);
        }
        for i in 0..body.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = body.clone();
                bad[i] ^= flip;
                let _ = M::decode(&bad);
            }
        }
    }

    #[test]
    fn connect_request_matches_the_documented_bytes() {
        assert_eq!(
            ConnectRequest.encode(),
            [0x08, 0, 0, 0, 0x04, 0, 0x04, 0, 0x04, 0, 0, 0]
        );
    }

    #[test]
    fn connect_reply_decodes_the_documented_bytes() {
        let body = hex::decode(
            [
                "0c000000",
                "0000",
                "0600",
                "0c00",
                "0400",
                "06000000",
                "00e1f50500000000",
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!(body.len(), 24);
        let reply = ConnectReply::decode(&body).unwrap();
        assert_eq!(reply.memory_capacity, 100_000_000);
    }

    #[test]
    fn every_message_round_trips() {
        let spec = ObjectSpec {
            segment_key: 4,
            data_offset: 64,
            data_size: 10,
            metadata_offset: 74,
            metadata_size: 4,
            device_num: 0,
        };
        let info = ObjectInfo {
            object_id: id(9),
            data_size: 10,
            metadata_size: 4,
            ref_count: 1,
            create_time: 1_700_000_000,
            construct_duration: 0,
            digest: Some(*b"\x01\x02\x03\x04\x05\x06\x07\x08"),
            is_deletion: false,
        };
        round_trip(ConnectRequest);
        round_trip(ConnectReply {
            memory_capacity: 100_000_000,
        });
        round_trip(CreateRequest {
            object_id: id(1),
            evict_if_full: true,
            data_size: 10,
            metadata_size: 4,
            device_num: 0,
        });
        round_trip(CreateReply {
            object_id: id(1),
            object: spec,
            error: PlasmaError::Ok,
            store_fd: 4,
            mmap_size: 100_007_944,
            ipc_handle: None,
        });
        round_trip(CreateReply {
            object_id: id(1),
            object: ObjectSpec::default(),
            error: PlasmaError::ObjectExists,
            store_fd: 0,
            mmap_size: 0,
            ipc_handle: Some(vec![1, 2, 3]),
        });
        round_trip(CreateAndSealRequest {
            object_id: id(2),
            evict_if_full: true,
            data: b"data".to_vec(),
            metadata: vec![],
            digest: [7; 8],
        });
        round_trip(CreateAndSealReply {
            error: PlasmaError::OutOfMemory,
        });
        round_trip(CreateAndSealBatchRequest {
            object_ids: vec![id(1), id(2)],
            evict_if_full: false,
            data: vec![b"a".to_vec(), vec![]],
            metadata: vec![vec![], b"m".to_vec()],
            digests: vec![[1; 8], [2; 8]],
        });
        round_trip(CreateAndSealBatchReply {
            error: PlasmaError::Ok,
        });
        round_trip(AbortRequest { object_id: id(3) });
        round_trip(AbortReply { object_id: id(3) });
        round_trip(SealRequest {
            object_id: id(3),
            digest: [0xab; 8],
        });
        round_trip(SealReply {
            object_id: id(3),
            error: PlasmaError::Ok,
        });
        round_trip(GetRequest {
            object_ids: vec![id(1), id(2), id(1)],
            timeout_ms: -1,
        });
        round_trip(GetReply {
            object_ids: vec![id(1), id(2)],
            objects: vec![spec, ObjectSpec::MISSING],
            store_fds: vec![4],
            mmap_sizes: vec![100_007_944],
        });
        round_trip(GetReply::default());
        round_trip(ReleaseRequest { object_id: id(4) });
        round_trip(ReleaseReply {
            object_id: id(4),
            error: PlasmaError::ObjectNotFound,
        });
        round_trip(DeleteRequest {
            object_ids: vec![id(5), id(6)],
        });
        round_trip(DeleteReply {
            object_ids: vec![id(5), id(6), id(7)],
            errors: vec![
                PlasmaError::Ok,
                PlasmaError::ObjectInUse,
                PlasmaError::ObjectNotSealed,
            ],
        });
        round_trip(ContainsRequest { object_id: id(8) });
        round_trip(ContainsReply {
            object_id: id(8),
            has_object: true,
        });
        round_trip(ListRequest);
        round_trip(ListReply {
            objects: vec![
                info.clone(),
                ObjectInfo {
                    digest: None,
                    construct_duration: -1,
                    ..info.clone()
                },
            ],
        });
        round_trip(EvictRequest { num_bytes: 1000 });
        round_trip(EvictReply { num_bytes: 7 });
        round_trip(SubscribeRequest);
        round_trip(Notification {
            object_info: vec![
                info.clone(),
                ObjectInfo {
                    object_id: id(10),
                    is_deletion: true,
                    ..ObjectInfo::default()
                },
            ],
        });
        round_trip(SetOptionsRequest {
            client_name: b"client".to_vec(),
            output_memory_quota: 1 << 20,
        });
        round_trip(SetOptionsReply {
            error: PlasmaError::OutOfMemory,
        });
        round_trip(GetDebugStringRequest);
        round_trip(GetDebugStringReply {
            debug_string: "hello".into(),
        });
        round_trip(RefreshLruRequest {
            object_ids: vec![id(1)],
        });
        round_trip(RefreshLruReply);
    }

    #[test]
    fn presence_and_length_rules_are_enforced() {
        // A CreateReply without its object id (an empty table) is missing a required field.
        assert!(matches!(
            CreateReply::decode(&encode_empty()),
            Err(WireError::MissingField {
                field: "object_id",
                ..
            })
        ));
        // A short object id.
        let mut fbb = Builder::new();
        let oid = fbb.create_byte_string(b"short");
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), oid);
        let root = fbb.end_table(start);
        let body = finish(fbb, root);
        assert!(matches!(
            AbortReply::decode(&body),
            Err(WireError::FieldLength {
                expected: 20,
                got: 5,
                ..
            })
        ));
        // A GetReply whose vectors disagree.
        let bad = GetReply {
            object_ids: vec![id(1)],
            objects: vec![],
            store_fds: vec![],
            mmap_sizes: vec![],
        };
        assert!(matches!(
            GetReply::decode(&bad.encode()),
            Err(WireError::Inconsistent { .. })
        ));
        // Unknown error code.
        let mut fbb = Builder::new();
        let start = fbb.start_table();
        fbb.push_slot(slot(0), 42i32, 0);
        let root = fbb.end_table(start);
        assert!(matches!(
            SetOptionsReply::decode(&finish(fbb, root)),
            Err(WireError::UnknownPlasmaError { value: 42, .. })
        ));
        // Garbage.
        assert!(GetReply::decode(&[]).is_err());
        assert!(GetReply::decode(&[0xff; 7]).is_err());
    }

    #[test]
    fn store_side_request_dispatch() {
        let body = GetRequest {
            object_ids: vec![id(1)],
            timeout_ms: 5,
        }
        .encode();
        assert!(matches!(
            Request::decode(MessageType::GetRequest, &body),
            Ok(Request::Get(GetRequest { timeout_ms: 5, .. }))
        ));
        assert!(Request::decode(MessageType::ReleaseReply, &body).is_err());
    }

    /// A batch whose `data` vector points N times at the same FlatBuffers string: the verifier
    /// accepts aliased offsets, so copying each element would turn a ~70 KiB body into N × 64
    /// KiB of allocations (a 1 MiB body could ask for tens of GiB and abort the store). The
    /// decoder must refuse more copied bytes than the body holds.
    #[test]
    fn aliased_byte_strings_are_refused_not_amplified() {
        const ALIASES: usize = 1024;
        let mut fbb = Builder::with_capacity(128 * 1024);
        let ids = id_offsets(&mut fbb, &vec![id(1); ALIASES]);
        let big = fbb.create_byte_string(&vec![7u8; 64 * 1024]);
        let data = fbb.create_vector(&vec![big; ALIASES]);
        let empty = fbb.create_byte_string(b"");
        let metadata = fbb.create_vector(&vec![empty; ALIASES]);
        let digest = fbb.create_byte_string(&[0u8; 8]);
        let digests = fbb.create_vector(&vec![digest; ALIASES]);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(0), ids);
        fbb.push_slot_always(slot(2), data);
        fbb.push_slot_always(slot(3), metadata);
        fbb.push_slot_always(slot(4), digests);
        let root = fbb.end_table(start);
        let body = finish(fbb, root);
        assert!(body.len() < 128 * 1024, "body is {} bytes", body.len());
        match CreateAndSealBatchRequest::decode(&body) {
            Err(WireError::Inconsistent { detail, .. }) => {
                assert!(detail.contains("aliased"), "{detail}")
            }
            Ok(batch) => panic!(
                "decoded {} data bytes from a {}-byte body",
                batch.data.iter().map(Vec::len).sum::<usize>(),
                body.len()
            ),
            Err(other) => panic!("unexpected error {other}"),
        }
        assert!(matches!(
            Request::decode(MessageType::CreateAndSealBatchRequest, &body),
            Err(WireError::Inconsistent { .. })
        ));
    }
}
