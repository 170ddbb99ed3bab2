package dev.mqnbd.server.fuzz;

import static dev.mqnbd.server.protocol.NbdConstants.CMD_FLAG_DF;
import static dev.mqnbd.server.protocol.NbdConstants.CMD_FLAG_FAST_ZERO;
import static dev.mqnbd.server.protocol.NbdConstants.CMD_FLAG_FUA;
import static dev.mqnbd.server.protocol.NbdConstants.CMD_FLAG_NO_HOLE;
import static dev.mqnbd.server.protocol.NbdConstants.CMD_FLAG_PAYLOAD_LEN;
import static dev.mqnbd.server.protocol.NbdConstants.CMD_FLAG_REQ_ONE;
import static dev.mqnbd.server.protocol.NbdConstants.INFO_BLOCK_SIZE;
import static dev.mqnbd.server.protocol.NbdConstants.INFO_DESCRIPTION;
import static dev.mqnbd.server.protocol.NbdConstants.INFO_NAME;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_ABORT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_EXPORT_NAME;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_EXTENDED_HEADERS;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_GO;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_INFO;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_LIST;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_LIST_META_CONTEXT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_SET_META_CONTEXT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_STARTTLS;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_STRUCTURED_REPLY;

import dev.mqnbd.server.protocol.Frames;
import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The seed corpus of the fuzz tests: valid (and a few deliberately broken) client streams, built field by
 * field from proto.md. Each seed is a {@link FuzzInput}: one chunking byte, then the stream. {@link #main}
 * writes them into the inputs directories Jazzer reads in regression mode; {@link SeedCorpusTest} checks
 * that the files there are these seeds and that each does what its name says.
 *
 * <p>Regenerate after changing a seed: {@code java -cp ... dev.mqnbd.server.fuzz.SeedCorpus
 * nbd-server/src/test/resources} (or run {@code SeedCorpusTest} with {@code -Dmqnbd.fuzz.writeSeeds=true}).
 * Inputs the fuzzer found (crash-*, regression-*) live in the same directories and are kept.
 */
final class SeedCorpus {
    static final String DIRECTORY = "dev/mqnbd/server/fuzz";

    private SeedCorpus() {}

    /** Seeds of {@code NbdRequestDecoderFuzzTest.compactHeaders}. */
    static Map<String, byte[]> compact() {
        Map<String, byte[]> seeds = new LinkedHashMap<>();
        byte[] mixed = concat(
                request(0, NbdCommand.WRITE, 1, 0, bytes(512, 1)),
                request(0, NbdCommand.READ, 2, 0, 512),
                request(CMD_FLAG_FUA, NbdCommand.WRITE, 3, 4096, bytes(100, 2)),
                request(0, NbdCommand.FLUSH, 4, 0, 0),
                request(0, NbdCommand.TRIM, 5, 8192, 4096),
                request(CMD_FLAG_NO_HOLE, NbdCommand.WRITE_ZEROES, 6, 0, 65536),
                request(0, NbdCommand.CACHE, 7, 0, 4096),
                request(CMD_FLAG_REQ_ONE, NbdCommand.BLOCK_STATUS, 8, 0, 1 << 20),
                request(0, NbdCommand.DISC, 9, 0, 0));
        seeds.put("mixed-whole", input(0, mixed));
        seeds.put("mixed-byte-by-byte", input(1, mixed));
        seeds.put("mixed-random-reads", input(7, mixed));
        seeds.put("write-at-the-maximum", input(3, request(0, NbdCommand.WRITE, 10, 0, bytes(1024, 3))));
        seeds.put(
                "write-above-the-maximum-drained",
                input(
                        5,
                        concat(
                                request(0, NbdCommand.WRITE, 11, 0, bytes(1500, 4)),
                                request(0, NbdCommand.READ, 12, 0, 512))));
        seeds.put(
                "unknown-type-then-read",
                input(0, concat(request(0xffff, 42, 13, -1, 0xffffffffL), request(0, NbdCommand.READ, 14, 0, 1))));
        seeds.put("partial-header-at-the-end", input(0, concat(request(0, NbdCommand.FLUSH, 15, 0, 0), new byte[] {
            0x25, 0x60, (byte) 0x95
        })));
        seeds.put("bad-magic-after-a-read", input(0, concat(request(0, NbdCommand.READ, 16, 0, 512), bytes(28, 0x55))));
        return seeds;
    }

    /** Seeds of {@code NbdRequestDecoderFuzzTest.extendedHeaders}. */
    static Map<String, byte[]> extended() {
        Map<String, byte[]> seeds = new LinkedHashMap<>();
        byte[] mixed = concat(
                extendedRequest(CMD_FLAG_PAYLOAD_LEN, NbdCommand.WRITE, 1, 0, bytes(512, 1)),
                extendedRequest(0, NbdCommand.READ, 2, 0, 512),
                extendedRequest(0, NbdCommand.WRITE, 3, 512, bytes(64, 2)),
                extendedRequest(0, NbdCommand.WRITE_ZEROES, 4, 0, 1L << 33),
                extendedRequest(CMD_FLAG_FAST_ZERO, NbdCommand.TRIM, 5, 1L << 40, 1L << 34),
                extendedRequest(CMD_FLAG_PAYLOAD_LEN, NbdCommand.BLOCK_STATUS, 6, 0, bytes(8, 3)),
                extendedRequest(0, NbdCommand.FLUSH, 7, 0, 0),
                extendedRequest(0, NbdCommand.DISC, 8, 0, 0));
        seeds.put("mixed-whole", input(0, mixed));
        seeds.put("mixed-byte-by-byte", input(1, mixed));
        seeds.put("mixed-random-reads", input(9, mixed));
        seeds.put(
                "write-above-the-maximum-drained",
                input(
                        4,
                        concat(
                                extendedRequest(CMD_FLAG_PAYLOAD_LEN, NbdCommand.WRITE, 9, 0, bytes(2048, 5)),
                                extendedRequest(0, NbdCommand.READ, 10, 0, 4096))));
        seeds.put("huge-effect-length-no-payload", input(0, extendedRequest(0, NbdCommand.WRITE_ZEROES, 11, 0, -1L)));
        seeds.put(
                "negative-payload-length",
                input(
                        0,
                        concat(
                                extendedRequest(0, NbdCommand.READ, 12, 0, 512),
                                extendedHeader(0, NbdCommand.WRITE, 13, 0, -2L))));
        seeds.put("compact-magic-in-extended-mode", input(0, request(0, NbdCommand.READ, 14, 0, 512)));
        return seeds;
    }

    /** Seeds of {@code NbdHandshakeFuzzTest.handshake}; names starting "transmission" reach transmission. */
    static Map<String, byte[]> handshake() {
        Map<String, byte[]> seeds = new LinkedHashMap<>();
        byte[] fixedNoZeroes = u32(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES);
        byte[] fixed = u32(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE);
        byte[] simpleIo = concat(
                request(0, NbdCommand.WRITE, 1, 4096, bytes(4096, 1)),
                request(CMD_FLAG_FUA, NbdCommand.WRITE, 2, 0, bytes(512, 2)),
                request(0, NbdCommand.READ, 3, 0, 8192),
                request(0, NbdCommand.FLUSH, 4, 0, 0),
                request(0, NbdCommand.TRIM, 5, 65536, 65536),
                request(0, NbdCommand.WRITE_ZEROES, 6, 0, 4096),
                request(0, NbdCommand.READ, 7, 1 << 20, 1),
                request(0, NbdCommand.DISC, 8, 0, 0));
        byte[] go =
                concat(fixedNoZeroes, option(OPT_GO, infoRequest("", INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE)));
        seeds.put("transmission-go-simple-replies", input(0, concat(go, simpleIo)));
        seeds.put("transmission-go-byte-by-byte", input(1, concat(go, simpleIo)));
        seeds.put(
                "transmission-export-name-with-zeroes",
                input(11, concat(fixed, option(OPT_EXPORT_NAME, utf8("")), simpleIo)));
        seeds.put(
                "transmission-structured-meta-context",
                input(
                        0,
                        concat(
                                fixedNoZeroes,
                                option(OPT_STRUCTURED_REPLY, new byte[0]),
                                option(OPT_LIST_META_CONTEXT, metaContextQuery("", "base:")),
                                option(
                                        OPT_SET_META_CONTEXT,
                                        metaContextQuery("", "base:allocation", "qemu:dirty-bitmap:x")),
                                option(OPT_GO, infoRequest("")),
                                request(0, NbdCommand.WRITE, 1, 0, bytes(4096, 3)),
                                request(CMD_FLAG_DF, NbdCommand.READ, 2, 0, 8192),
                                request(0, NbdCommand.READ, 3, 0, 16384),
                                request(0, NbdCommand.BLOCK_STATUS, 4, 0, 1 << 20),
                                request(CMD_FLAG_REQ_ONE, NbdCommand.BLOCK_STATUS, 5, 4096, 8192),
                                request(0, NbdCommand.READ, 6, 2 << 20, 512),
                                request(0, NbdCommand.DISC, 7, 0, 0))));
        seeds.put(
                "transmission-extended-headers",
                input(
                        13,
                        concat(
                                fixedNoZeroes,
                                option(OPT_EXTENDED_HEADERS, new byte[0]),
                                option(OPT_STRUCTURED_REPLY, new byte[0]),
                                option(OPT_SET_META_CONTEXT, metaContextQuery("", "base:allocation")),
                                option(OPT_GO, infoRequest("", INFO_BLOCK_SIZE)),
                                extendedRequest(CMD_FLAG_PAYLOAD_LEN, NbdCommand.WRITE, 1, 0, bytes(2048, 4)),
                                extendedRequest(0, NbdCommand.READ, 2, 0, 4096),
                                extendedRequest(CMD_FLAG_FAST_ZERO, NbdCommand.WRITE_ZEROES, 3, 8192, 1L << 16),
                                extendedRequest(0, NbdCommand.BLOCK_STATUS, 4, 0, 1L << 20),
                                extendedRequest(0, NbdCommand.CACHE, 5, 0, 4096),
                                extendedRequest(0, NbdCommand.DISC, 6, 0, 0))));
        seeds.put(
                "transmission-read-only-export",
                input(
                        0,
                        concat(
                                fixedNoZeroes,
                                option(OPT_INFO, infoRequest("ro", INFO_NAME)),
                                option(OPT_GO, infoRequest("ro")),
                                request(0, NbdCommand.WRITE, 1, 0, bytes(512, 5)),
                                request(0, NbdCommand.READ, 2, 0, 512),
                                request(0, NbdCommand.TRIM, 3, 0, 512),
                                request(0, NbdCommand.DISC, 4, 0, 0))));
        seeds.put(
                "transmission-oversized-write-drained",
                input(
                        17,
                        concat(
                                go,
                                request(0, NbdCommand.WRITE, 1, 0, bytes(20000, 6)),
                                request(0, NbdCommand.READ, 2, 0, 512))));
        byte[] slowIo = concat(
                fixedNoZeroes,
                option(OPT_STRUCTURED_REPLY, new byte[0]),
                option(OPT_GO, infoRequest("slow")),
                request(0, NbdCommand.WRITE, 1, 0, bytes(4096, 11)),
                request(CMD_FLAG_FUA, NbdCommand.WRITE, 2, 4096, bytes(4096, 12)),
                request(0, NbdCommand.READ, 3, 0, 8192),
                request(0, NbdCommand.FLUSH, 4, 0, 0),
                request(0, NbdCommand.WRITE_ZEROES, 5, 8192, 4096),
                request(0, NbdCommand.READ, 6, 4096, 4096),
                request(0, NbdCommand.WRITE, 7, 12288, bytes(512, 13)),
                request(0, NbdCommand.CACHE, 8, 0, 4096),
                request(0, NbdCommand.TRIM, 9, 16384, 4096),
                request(0, NbdCommand.READ, 10, 0, 16384),
                request(0, NbdCommand.FLUSH, 11, 0, 0),
                request(0, NbdCommand.READ, 12, 65536, 512));
        seeds.put("transmission-slow-device-hang-up-in-flight", input(0, slowIo));
        seeds.put(
                "transmission-slow-device-byte-by-byte",
                input(1, concat(slowIo, request(0, NbdCommand.DISC, 13, 0, 0))));
        seeds.put(
                "transmission-slow-device-random-reads",
                input(21, concat(slowIo, request(0, NbdCommand.DISC, 13, 0, 0))));
        seeds.put(
                "list-info-abort",
                input(
                        0,
                        concat(
                                fixedNoZeroes,
                                option(OPT_LIST, new byte[0]),
                                option(OPT_INFO, infoRequest("", INFO_NAME, INFO_DESCRIPTION)),
                                option(OPT_INFO, infoRequest("no-such-export")),
                                option(OPT_ABORT, new byte[0]))));
        seeds.put(
                "transmission-after-unsupported-and-invalid-options",
                input(
                        19,
                        concat(
                                fixedNoZeroes,
                                option(OPT_STARTTLS, new byte[0]),
                                option(99, bytes(7, 7)),
                                option(OPT_LIST, bytes(3, 8)),
                                option(OPT_SET_META_CONTEXT, metaContextQuery("", "base:allocation")),
                                option(OPT_GO, new byte[] {0, 0, 0, 9, 'x'}),
                                option(OPT_INFO, bytes(20000, 9)),
                                option(OPT_GO, infoRequest("")),
                                request(0, NbdCommand.READ, 1, 0, 512),
                                request(0, 77, 2, 0, 0),
                                request(0, NbdCommand.DISC, 3, 0, 0))));
        seeds.put(
                "transmission-plain-newstyle-export-name",
                input(
                        0,
                        concat(
                                u32(0),
                                option(OPT_EXPORT_NAME, utf8("ro")),
                                request(0, NbdCommand.READ, 1, 0, 4096),
                                request(0, NbdCommand.WRITE, 2, 0, bytes(512, 10)))));
        seeds.put("plain-newstyle-other-option", input(0, concat(u32(0), option(OPT_LIST, new byte[0]))));
        seeds.put("bad-option-magic", input(0, concat(fixed, bytes(16, 0x42))));
        seeds.put("unknown-client-flags", input(0, u32(0x80)));
        seeds.put("export-name-unknown", input(0, concat(fixed, option(OPT_EXPORT_NAME, utf8("nope")))));
        return seeds;
    }

    /** Seeds of {@code AllTargetsFuzzTest.anyTarget}: each target's seeds behind its selector byte. */
    static Map<String, byte[]> allTargets() {
        Map<String, byte[]> seeds = new LinkedHashMap<>();
        compact().forEach((name, seed) -> seeds.put("compact-" + name, concat(new byte[] {0}, seed)));
        extended().forEach((name, seed) -> seeds.put("extended-" + name, concat(new byte[] {1}, seed)));
        handshake().forEach((name, seed) -> seeds.put("handshake-" + name, concat(new byte[] {2}, seed)));
        return seeds;
    }

    /** Writes every seed under {@code resources} (a module's src/test/resources); keeps other files. */
    public static void main(String[] args) throws IOException {
        Path resources = Path.of(args.length > 0 ? args[0] : "src/test/resources");
        write(resources, "NbdRequestDecoderFuzzTest", "compactHeaders", compact());
        write(resources, "NbdRequestDecoderFuzzTest", "extendedHeaders", extended());
        write(resources, "NbdHandshakeFuzzTest", "handshake", handshake());
        write(resources, "AllTargetsFuzzTest", "anyTarget", allTargets());
    }

    static Path directory(Path resources, String testClass, String method) {
        return resources.resolve(DIRECTORY).resolve(testClass + "Inputs").resolve(method);
    }

    private static void write(Path resources, String testClass, String method, Map<String, byte[]> seeds)
            throws IOException {
        Path dir = Files.createDirectories(directory(resources, testClass, method));
        for (Map.Entry<String, byte[]> seed : seeds.entrySet()) {
            Files.write(dir.resolve("seed-" + seed.getKey()), seed.getValue());
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Frames, field by field.

    static byte[] input(int chunking, byte[] stream) {
        return concat(new byte[] {(byte) chunking}, stream);
    }

    /** u32 magic | u16 flags | u16 type | u64 cookie | u64 offset | u32 length | payload */
    static byte[] request(int flags, NbdCommand command, long cookie, long offset, byte[] payload) {
        return request(flags, command.code(), cookie, offset, payload.length, payload);
    }

    static byte[] request(int flags, NbdCommand command, long cookie, long offset, long length) {
        return request(flags, command.code(), cookie, offset, length, new byte[0]);
    }

    static byte[] request(int flags, int type, long cookie, long offset, long length) {
        return request(flags, type, cookie, offset, length, new byte[0]);
    }

    private static byte[] request(int flags, int type, long cookie, long offset, long length, byte[] payload) {
        ByteBuf buf = Unpooled.buffer();
        buf.writeInt(NbdConstants.REQUEST_MAGIC).writeShort(flags).writeShort(type);
        buf.writeLong(cookie).writeLong(offset).writeInt((int) length).writeBytes(payload);
        return ByteBufUtil.getBytes(buf);
    }

    /** u32 magic | u16 flags | u16 type | u64 cookie | u64 offset | u64 length | payload (ext branch) */
    static byte[] extendedRequest(int flags, NbdCommand command, long cookie, long offset, byte[] payload) {
        return concat(extendedHeader(flags, command, cookie, offset, payload.length), payload);
    }

    static byte[] extendedRequest(int flags, NbdCommand command, long cookie, long offset, long length) {
        return extendedHeader(flags, command, cookie, offset, length);
    }

    static byte[] extendedHeader(int flags, NbdCommand command, long cookie, long offset, long length) {
        ByteBuf buf = Unpooled.buffer();
        buf.writeInt(NbdConstants.EXTENDED_REQUEST_MAGIC).writeShort(flags).writeShort(command.code());
        buf.writeLong(cookie).writeLong(offset).writeLong(length);
        return ByteBufUtil.getBytes(buf);
    }

    /** u64 IHAVEOPT | u32 option | u32 length | data: {@link Frames#option}. */
    static byte[] option(int option, byte[] data) {
        return Frames.option(option, data);
    }

    /** INFO/GO data: {@link Frames#infoRequest}. */
    static byte[] infoRequest(String name, int... infos) {
        return Frames.infoRequest(name, infos);
    }

    /** LIST/SET_META_CONTEXT data: u32 name length | name | u32 n | n × (u32 length | query) */
    static byte[] metaContextQuery(String export, String... queries) {
        byte[] n = utf8(export);
        ByteBuf buf = Unpooled.buffer();
        buf.writeInt(n.length).writeBytes(n).writeInt(queries.length);
        for (String q : queries) {
            byte[] b = utf8(q);
            buf.writeInt(b.length).writeBytes(b);
        }
        return ByteBufUtil.getBytes(buf);
    }

    static byte[] u32(int value) {
        return new byte[] {(byte) (value >>> 24), (byte) (value >>> 16), (byte) (value >>> 8), (byte) value};
    }

    static byte[] utf8(String s) {
        return Frames.utf8(s);
    }

    /** {@code n} bytes of a pattern that differs per {@code seed}. */
    static byte[] bytes(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (seed * 37 + i * 13);
        }
        return b;
    }

    static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) {
            n += p.length;
        }
        byte[] out = new byte[n];
        int at = 0;
        for (byte[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }
}
