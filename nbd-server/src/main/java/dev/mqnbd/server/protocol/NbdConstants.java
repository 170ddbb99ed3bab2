package dev.mqnbd.server.protocol;

/**
 * The numbers of the NBD protocol (proto.md), named without their repeated {@code NBD_} prefix:
 * {@code NBD_FLAG_SEND_FUA} is {@link #FLAG_SEND_FUA}, {@code NBD_OPT_GO} is {@link #OPT_GO}. Values
 * marked "ext" are reserved on master and defined on the {@code extension-ext-header} branch.
 */
public final class NbdConstants {
    private NbdConstants() {}

    /* --------------- magics (proto.md "Handshake", "Transmission", "Reserved Magic values") --------------- */

    /** {@code NBDMAGIC}: the first u64 of the server greeting. */
    public static final long NBDMAGIC = 0x4e42444d41474943L;
    /** {@code IHAVEOPT}: the second u64 of the greeting, and the first u64 of every option request. */
    public static final long IHAVEOPT = 0x49484156454F5054L;
    /** The first u64 of every option reply. */
    public static final long OPTION_REPLY_MAGIC = 0x3e889045565a9L;
    /** {@code NBD_REQUEST_MAGIC}: the first u32 of a compact request. */
    public static final int REQUEST_MAGIC = 0x25609513;
    /** {@code NBD_EXTENDED_REQUEST_MAGIC} (ext): the first u32 of an extended request. */
    public static final int EXTENDED_REQUEST_MAGIC = 0x21e41c71;
    /** {@code NBD_SIMPLE_REPLY_MAGIC}. */
    public static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    /** {@code NBD_STRUCTURED_REPLY_MAGIC}. */
    public static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;
    /** {@code NBD_EXTENDED_REPLY_MAGIC} (ext). */
    public static final int EXTENDED_REPLY_MAGIC = 0x6e8a278c;

    /* --------------- handshake flags (u16, server greeting) --------------- */

    public static final int HANDSHAKE_FLAG_FIXED_NEWSTYLE = 1;
    public static final int HANDSHAKE_FLAG_NO_ZEROES = 1 << 1;

    /* --------------- client flags (u32, the client's answer to the greeting) --------------- */

    public static final int CLIENT_FLAG_FIXED_NEWSTYLE = 1;
    public static final int CLIENT_FLAG_NO_ZEROES = 1 << 1;

    /* --------------- transmission flags (u16, sent with the export size) --------------- */

    public static final int FLAG_HAS_FLAGS = 1;
    public static final int FLAG_READ_ONLY = 1 << 1;
    public static final int FLAG_SEND_FLUSH = 1 << 2;
    public static final int FLAG_SEND_FUA = 1 << 3;
    public static final int FLAG_ROTATIONAL = 1 << 4;
    public static final int FLAG_SEND_TRIM = 1 << 5;
    public static final int FLAG_SEND_WRITE_ZEROES = 1 << 6;
    /** MUST be clear unless structured replies were negotiated. */
    public static final int FLAG_SEND_DF = 1 << 7;

    public static final int FLAG_CAN_MULTI_CONN = 1 << 8;
    /** ext (resize branch). */
    public static final int FLAG_SEND_RESIZE = 1 << 9;

    public static final int FLAG_SEND_CACHE = 1 << 10;
    public static final int FLAG_SEND_FAST_ZERO = 1 << 11;
    /** ext: MUST be clear unless extended headers were negotiated. */
    public static final int FLAG_BLOCK_STATUS_PAYLOAD = 1 << 12;

    /* --------------- option types (u32, proto.md "Option types") --------------- */

    public static final int OPT_EXPORT_NAME = 1;
    public static final int OPT_ABORT = 2;
    public static final int OPT_LIST = 3;
    /** Withdrawn. */
    public static final int OPT_PEEK_EXPORT = 4;

    public static final int OPT_STARTTLS = 5;
    public static final int OPT_INFO = 6;
    public static final int OPT_GO = 7;
    public static final int OPT_STRUCTURED_REPLY = 8;
    public static final int OPT_LIST_META_CONTEXT = 9;
    public static final int OPT_SET_META_CONTEXT = 10;
    /** ext. */
    public static final int OPT_EXTENDED_HEADERS = 11;

    /* --------------- option reply types (u32, proto.md "Option reply types") --------------- */

    public static final int REP_ACK = 1;
    public static final int REP_SERVER = 2;
    public static final int REP_INFO = 3;
    public static final int REP_META_CONTEXT = 4;
    /** Bit 31: set on every error reply type. */
    public static final int REP_FLAG_ERROR = 1 << 31;

    public static final int REP_ERR_UNSUP = REP_FLAG_ERROR | 1;
    public static final int REP_ERR_POLICY = REP_FLAG_ERROR | 2;
    public static final int REP_ERR_INVALID = REP_FLAG_ERROR | 3;
    public static final int REP_ERR_PLATFORM = REP_FLAG_ERROR | 4;
    public static final int REP_ERR_TLS_REQD = REP_FLAG_ERROR | 5;
    public static final int REP_ERR_UNKNOWN = REP_FLAG_ERROR | 6;
    public static final int REP_ERR_SHUTDOWN = REP_FLAG_ERROR | 7;
    public static final int REP_ERR_BLOCK_SIZE_REQD = REP_FLAG_ERROR | 8;
    public static final int REP_ERR_TOO_BIG = REP_FLAG_ERROR | 9;
    /** ext. */
    public static final int REP_ERR_EXT_HEADER_REQD = REP_FLAG_ERROR | 10;

    /* --------------- NBD_INFO_* (u16, inside NBD_REP_INFO and in INFO/GO requests) --------------- */

    public static final int INFO_EXPORT = 0;
    public static final int INFO_NAME = 1;
    public static final int INFO_DESCRIPTION = 2;
    public static final int INFO_BLOCK_SIZE = 3;

    /* --------------- command flags (u16, proto.md "Command flags") --------------- */

    public static final int CMD_FLAG_FUA = 1;
    public static final int CMD_FLAG_NO_HOLE = 1 << 1;
    public static final int CMD_FLAG_DF = 1 << 2;
    public static final int CMD_FLAG_REQ_ONE = 1 << 3;
    public static final int CMD_FLAG_FAST_ZERO = 1 << 4;
    /** ext: the request's length is a payload length, and a payload follows the header. */
    public static final int CMD_FLAG_PAYLOAD_LEN = 1 << 5;

    /* --------------- structured replies (proto.md "Structured reply chunk message") --------------- */

    public static final int REPLY_FLAG_DONE = 1;
    public static final int REPLY_TYPE_NONE = 0;
    public static final int REPLY_TYPE_OFFSET_DATA = 1;
    public static final int REPLY_TYPE_OFFSET_HOLE = 2;
    public static final int REPLY_TYPE_BLOCK_STATUS = 5;
    /** ext. */
    public static final int REPLY_TYPE_BLOCK_STATUS_EXT = 6;

    public static final int REPLY_TYPE_ERROR = (1 << 15) + 1;
    public static final int REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;
    /** {@code base:allocation}: the range is a hole (reads may still return data). */
    public static final int STATE_HOLE = 1;
    /** {@code base:allocation}: the range reads as zeroes. */
    public static final int STATE_ZERO = 1 << 1;

    /* --------------- sizes --------------- */

    /** The greeting: u64 NBDMAGIC, u64 IHAVEOPT, u16 handshake flags. */
    public static final int GREETING_LENGTH = 18;
    /** An option request header: u64 IHAVEOPT, u32 option, u32 length. */
    public static final int OPTION_HEADER_LENGTH = 16;
    /** An option reply header: u64 magic, u32 option, u32 reply type, u32 length. */
    public static final int OPTION_REPLY_HEADER_LENGTH = 20;
    /** The zero padding after the {@code NBD_OPT_EXPORT_NAME} reply, unless NO_ZEROES was negotiated. */
    public static final int EXPORT_NAME_PADDING = 124;
    /** A compact request header: u32 magic, u16 flags, u16 type, u64 cookie, u64 offset, u32 length. */
    public static final int REQUEST_HEADER_LENGTH = 28;
    /** ext: an extended request header: as the compact one, with a u64 length. */
    public static final int EXTENDED_REQUEST_HEADER_LENGTH = 32;
    /** A simple reply header: u32 magic, u32 error, u64 cookie. */
    public static final int SIMPLE_REPLY_HEADER_LENGTH = 16;
    /** The maximum payload a server must accept when it advertises none (proto.md "Size constraints"). */
    public static final int DEFAULT_MAXIMUM_PAYLOAD = 32 * 1024 * 1024;
    /** The longest string (export name, description, message) in bytes (proto.md "Conventions"). */
    public static final int MAX_STRING_LENGTH = 4096;
}
