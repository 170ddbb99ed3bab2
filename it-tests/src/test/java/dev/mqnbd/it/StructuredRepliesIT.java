package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Structured replies, block status, fast zero, DF and multi-conn as real clients see them: libnbd's
 * nbdinfo/nbdcopy/nbdsh and qemu-img against a memory-backed server in this JVM.
 */
class StructuredRepliesIT {
    private static ServerFixture server;

    @TempDir
    static Path tmp;

    @BeforeAll
    static void startServer() throws Exception {
        server = ServerFixture.builder()
                .export("map", "memory:64M")
                .export("qmap", "memory:64M")
                .export("sparse4g", "memory:4G")
                .export("nbdsh", "memory:16M")
                .export("multi", "memory:16M")
                .start();
    }

    @AfterAll
    static void stopServer() {
        if (server != null) {
            server.close();
        }
    }

    @Test
    void nbdinfoMap_showsTrueAllocationAfterWritesTrimsAndZeroing() {
        String uri = server.uri("map");
        Tool.run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-c",
                        "write -P 0x55 1M 64k",
                        "-c",
                        "write -P 0x66 8M 2M",
                        "-c",
                        "discard 8M 1M",
                        "-c",
                        "write -P 0x77 16M 1M",
                        "-c",
                        "write -z -u 16M 512k",
                        "-c",
                        "write -z 17M 4k",
                        uri)
                .assertSuccess();

        String map = Tool.run("nbdinfo", "--map", "--json", uri)
                .assertSuccess()
                .stdout()
                .replaceAll("\\s", "");

        assertThat(map)
                .contains(
                        "{\"offset\":0,\"length\":1048576,\"type\":3,",
                        "{\"offset\":1048576,\"length\":65536,\"type\":0,",
                        "{\"offset\":1114112,\"length\":8323072,\"type\":3,", // up to 9M: the trimmed first half of 8M
                        "{\"offset\":9437184,\"length\":1048576,\"type\":0,",
                        // 10M..16M never written, then 16M..16.5M zeroed with holes allowed (-u): released, one run.
                        "{\"offset\":10485760,\"length\":6815744,\"type\":3,",
                        "{\"offset\":17301504,\"length\":524288,\"type\":0,", // the rest, and 4k zeroed with NO_HOLE
                        "{\"offset\":17825792,\"length\":49283072,\"type\":3,");
    }

    @Test
    void qemuImgMap_agreesWithWhatWasWritten() {
        String uri = server.uri("qmap");
        Tool.run("qemu-io", "-f", "raw", "-c", "write -P 1 4M 4M", "-c", "write -P 2 32M 128k", uri)
                .assertSuccess();

        String map = Tool.run("qemu-img", "map", "-f", "raw", "--output=json", uri)
                .assertSuccess()
                .stdout();

        assertThat(map.replaceAll("\\s", ""))
                .contains(
                        "\"start\":0,\"length\":4194304,\"depth\":0,\"present\":true,\"zero\":true,\"data\":false",
                        "\"start\":4194304,\"length\":4194304,\"depth\":0,\"present\":true,\"zero\":false,\"data\":true",
                        "\"start\":8388608,\"length\":25165824,\"depth\":0,\"present\":true,\"zero\":true,\"data\":false",
                        "\"start\":33554432,\"length\":131072,\"depth\":0,\"present\":true,\"zero\":false,\"data\":true");
    }

    @Test
    void nbdcopy_mostlyEmpty4GiBExport_staysSparse() throws Exception {
        String uri = server.uri("sparse4g");
        Tool.run("qemu-io", "-f", "raw", "-c", "write -P 0x77 100M 3M", "-c", "write -P 0x78 4000M 1M", uri)
                .assertSuccess();
        Path copy = tmp.resolve("sparse.img");

        long start = System.nanoTime();
        Tool.run(Duration.ofMinutes(2), "nbdcopy", uri, copy.toString()).assertSuccess();
        long millis = (System.nanoTime() - start) / 1_000_000;

        assertThat(Files.size(copy)).isEqualTo(4L << 30);
        long allocatedKiB = Long.parseLong(
                Tool.run("du", "-k", copy.toString()).assertSuccess().stdout().split("\\s")[0]);
        assertThat(allocatedKiB)
                .as("KiB allocated for 4 MiB of data (copy took %d ms)", millis)
                .isLessThan(16 * 1024);
        String check = Tool.run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-r",
                        "-c",
                        "read -P 0x77 100M 3M",
                        "-c",
                        "read -P 0x78 4000M 1M",
                        "-c",
                        "read -P 0 0 100M",
                        copy.toString())
                .assertSuccess()
                .stdout();
        assertThat(check).doesNotContain("Pattern verification failed");
    }

    @Test
    void nbdsh_structuredErrorsReqOneFastZeroAndDf() {
        String script = String.join(
                "\n",
                "import errno",
                "h.set_strict_mode(0)",
                "h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)",
                "h.connect_uri('" + server.uri("nbdsh") + "')",
                "assert h.get_structured_replies_negotiated()",
                "assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)",
                "assert h.can_df() and h.can_fast_zero() and h.can_cache() and h.can_multi_conn()",
                // A structured error: a read past the end is answered with an ERROR chunk, EINVAL.
                "try:",
                "    h.pread(4096, 16 * 1024 * 1024 - 1024)",
                "    raise SystemExit('read past the end succeeded')",
                "except nbd.Error as e:",
                "    assert e.errnum == errno.EINVAL, e",
                // DF: one content chunk even across a hole.
                "h.pwrite(b'x' * 4096, 8192)",
                "chunks = []",
                "def chunk(buf, offset, status, err):",
                "    chunks.append((offset, len(buf), status))",
                "    return 0",
                "buf = h.pread_structured(16384, 0, chunk, nbd.CMD_FLAG_DF)",
                "assert len(chunks) == 1 and chunks[0] == (0, 16384, nbd.READ_DATA), chunks",
                "assert buf[8192:12288] == b'x' * 4096 and buf[:8192] == bytes(8192)",
                // Without DF the holes come back as OFFSET_HOLE chunks.
                "chunks.clear()",
                "h.pread_structured(16384, 0, chunk)",
                "assert (0, 8192, nbd.READ_HOLE) in chunks and (8192, 4096, nbd.READ_DATA) in chunks, chunks",
                // REQ_ONE: exactly one extent, within the request.
                "extents = []",
                "def ext(metacontext, offset, entries, err):",
                "    extents.append(list(entries))",
                "    return 0",
                "h.block_status(65536, 0, ext, nbd.CMD_FLAG_REQ_ONE)",
                "assert extents == [[8192, 3]], extents",
                "extents.clear()",
                "h.block_status(65536, 0, ext)",
                "assert extents == [[8192, 3, 4096, 0, 53248, 3]], extents",
                // FAST_ZERO: zeroing memory is fast, so it succeeds and the range reads as zeroes.
                "h.zero(4096, 8192, nbd.CMD_FLAG_FAST_ZERO)",
                "assert h.pread(4096, 8192) == bytes(4096)",
                "h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)",
                "h.cache(4096, 0)",
                "print('ok')");

        String out = Tool.run("nbdsh", "-c", script).assertSuccess().stdout();

        assertThat(out.strip()).isEqualTo("ok");
    }

    @Test
    void multiConn_flushOnOneConnectionCoversWritesCompletedOnOthers() {
        // The promise of NBD_FLAG_CAN_MULTI_CONN: once writes have completed on connections A and B, a FLUSH
        // on connection C makes them durable and a fresh connection D reads them.
        String script = String.join(
                "\n",
                "uri = '" + server.uri("multi") + "'",
                "conns = []",
                "for i in range(3):",
                "    c = nbd.NBD()",
                "    c.connect_uri(uri)",
                "    assert c.can_multi_conn()",
                "    conns.append(c)",
                "a, b, c = conns",
                "a.pwrite(b'A' * 65536, 0)",
                "b.pwrite(b'B' * 65536, 65536, nbd.CMD_FLAG_FUA)",
                "c.flush()",
                "d = nbd.NBD()",
                "d.connect_uri(uri)",
                "assert d.pread(65536, 0) == b'A' * 65536",
                "assert d.pread(65536, 65536) == b'B' * 65536",
                "for x in conns + [d]:",
                "    x.shutdown()",
                "print('ok')");

        String out = Tool.run("nbdsh", "-c", script).assertSuccess().stdout();

        assertThat(out.strip()).isEqualTo("ok");
    }
}
