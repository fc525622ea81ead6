/**
 * Numbers of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md) that this client uses.
 * All integers on the wire are big-endian.
 */

export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OLDSTYLE_MAGIC = 0x00420281861253n;
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server) and client flags. */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;

/** Options of the handshake phase. */
export const OPT_ABORT = 2;
export const OPT_GO = 7;
export const OPT_STRUCTURED_REPLY = 8;
export const OPT_SET_META_CONTEXT = 10;

/** Option reply types; errors have bit 31 set. */
export const REP_ACK = 1;
export const REP_INFO = 3;
export const REP_META_CONTEXT = 4;
export const REP_ERROR_BIT = 0x80000000;
export const REP_ERR_UNSUP = REP_ERROR_BIT + 1;
export const REP_ERR_UNKNOWN = REP_ERROR_BIT + 6;

/** NBD_INFO_* items of NBD_REP_INFO replies. */
export const INFO_EXPORT = 0;
export const INFO_BLOCK_SIZE = 3;

/** Transmission flags (16 bits, sent with the export info). */
export const TFLAG_HAS_FLAGS = 1 << 0;
export const TFLAG_READ_ONLY = 1 << 1;
export const TFLAG_CAN_MULTI_CONN = 1 << 8;

/** Commands of the transmission phase. */
export const CMD_READ = 0;
export const CMD_DISC = 2;
export const CMD_BLOCK_STATUS = 7;

/** Structured reply chunks. */
export const REPLY_FLAG_DONE = 1 << 0;
export const REPLY_TYPE_NONE = 0;
export const REPLY_TYPE_OFFSET_DATA = 1;
export const REPLY_TYPE_OFFSET_HOLE = 2;
export const REPLY_TYPE_BLOCK_STATUS = 5;
export const REPLY_TYPE_ERROR_BIT = 1 << 15;
export const REPLY_TYPE_ERROR_OFFSET = REPLY_TYPE_ERROR_BIT + 2;

/** Extent flags of the `base:allocation` context. */
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;
/** Extent flag of a `qemu:dirty-bitmap:<name>` context. */
export const STATE_DIRTY = 1 << 0;

export const BASE_ALLOCATION = 'base:allocation';
export function dirtyBitmapContext(bitmap: string): string {
  return `qemu:dirty-bitmap:${bitmap}`;
}

/** Largest request payload a server must accept when it advertises no block size (spec: 32 MiB). */
export const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;
/** Upper bounds this client accepts for variable-length server messages (bounded memory). */
export const MAX_OPTION_REPLY = 64 * 1024;
export const MAX_STATUS_CHUNK = 16 * 1024 * 1024;
export const MAX_ERROR_CHUNK = 64 * 1024;

/* ---- Numbers only the server (server.ts) uses. ---- */
export const OPT_EXPORT_NAME = 1;
export const OPT_LIST = 3;
export const OPT_INFO = 6;
export const OPT_LIST_META_CONTEXT = 9;
export const REP_SERVER = 2;
export const REP_ERR_POLICY = REP_ERROR_BIT + 2;
export const REP_ERR_INVALID = REP_ERROR_BIT + 3;
export const REP_ERR_TOO_BIG = REP_ERROR_BIT + 9;
export const TFLAG_SEND_FLUSH = 1 << 2;
export const TFLAG_SEND_CACHE = 1 << 10;
export const CMD_WRITE = 1;
export const CMD_FLUSH = 3;
export const CMD_TRIM = 4;
export const CMD_CACHE = 5;
export const CMD_WRITE_ZEROES = 6;
/** Command flag: answer block status with one extent only. */
export const CMD_FLAG_REQ_ONE = 1 << 3;
export const REPLY_TYPE_ERROR = REPLY_TYPE_ERROR_BIT + 1;
/** Errno values on the wire (the spec's numbers). */
export const EPERM = 1;
export const EIO = 5;
export const EINVAL = 22;
export const ENOTSUP = 95;
export const ESHUTDOWN = 108;
