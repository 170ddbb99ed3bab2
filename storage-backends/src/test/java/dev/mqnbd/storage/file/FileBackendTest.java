package dev.mqnbd.storage.file;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.ThreadHctxExecutor;
import dev.mqnbd.storage.Backends;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import dev.mqnbd.storage.TestDevice;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Opening file exports: the spec options, and every refusal with the message a user sees. */
class FileBackendTest {
    private final List<BlockQueue<?, ?, ?, ?>> queues = new ArrayList<>();
    private final List<ThreadHctxExecutor> executors = new ArrayList<>();
    private final List<Path> immutable = new ArrayList<>();
    private Process child;
    private Path dir;

    @BeforeEach
    void createDir() throws IOException {
        Path base = Path.of("target", "file-tests").toAbsolutePath();
        Files.createDirectories(base);
        dir = Files.createTempDirectory(base, "open");
    }

    @AfterEach
    void cleanUp() throws Exception {
        for (BlockQueue<?, ?, ?, ?> q : queues) {
            q.close();
        }
        executors.forEach(ThreadHctxExecutor::close);
        if (child != null) {
            child.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
            child.destroyForcibly().waitFor();
        }
        for (Path p : immutable) {
            FileTestSupport.run("chattr", "-i", p.toString());
        }
        FileTestSupport.deleteTree(dir);
    }

    private TestDevice open(String spec, boolean readOnly) throws Exception {
        ThreadHctxExecutor ex = new ThreadHctxExecutor("hctx");
        executors.add(ex);
        BlockQueue<?, ?, ?, ?> q =
                Backends.open(spec, new DeviceOptions(readOnly), new QueueSetup("t", 1, 8, i -> ex, Duration.ZERO));
        queues.add(q);
        return new TestDevice(q);
    }

    @Test
    void backends_findTheFileScheme() {
        assertThat(Backends.forSpec("file:/x")).isInstanceOf(FileBackend.class);
        assertThat(new FileBackend().usage()).startsWith("file:PATH[,create=SIZE][,direct]");
    }

    @Test
    void create_makesASparseFileOfThatSize() throws Exception {
        Path image = dir.resolve("new.img");

        TestDevice dev = open("file:" + image + ",create=1G", false);

        assertThat(Files.size(image)).isEqualTo(1L << 30);
        assertThat(FileTestSupport.allocated(image)).isLessThan(1 << 20);
        assertThat(dev.queue().limits().capacity()).isEqualTo(1L << 30);
        dev.write((1L << 30) - 5, new byte[] {1, 2, 3, 4, 5});
        assertThat(dev.read((1L << 30) - 6, 6)).containsExactly(0, 1, 2, 3, 4, 5);
    }

    @Test
    void create_existingFile_isServedAsItIs() throws Exception {
        Path image = FileTestSupport.sparse(dir.resolve("old.img"), 3 << 20);

        TestDevice dev = open("file:" + image + ",create=1G", false);

        assertThat(dev.queue().limits().capacity()).isEqualTo(3 << 20);
        assertThat(Files.size(image)).isEqualTo(3 << 20);
    }

    @Test
    void missingFile_withoutCreate_isRefused() {
        Path image = dir.resolve("missing.img");

        assertThatThrownBy(() -> open("file:" + image, false))
                .isInstanceOf(IOException.class)
                .hasMessage("file " + image + " does not exist (expected: an image file or a block device; add"
                        + " ,create=SIZE to the spec to create a sparse file)");
    }

    @Test
    void directory_isRefused() {
        assertThatThrownBy(() -> open("file:" + dir, false))
                .isInstanceOf(IOException.class)
                .hasMessage("file " + dir + " is a directory (expected: an image file or a block device)");
    }

    @Test
    void fileServedReadWrite_isRefusedToASecondServer_inThisProcess() throws Exception {
        Path image = FileTestSupport.sparse(dir.resolve("busy.img"), 1 << 20);
        open("file:" + image, false);

        assertThatThrownBy(() -> open("file:" + image, false))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("file " + image + " is locked: another process holds it open");
        assertThatThrownBy(() -> open("file:" + image, true))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("file " + image + " is locked: another process holds it open for writing");
    }

    @Test
    void fileLockedByAnotherProcess_isRefused_andFreeOnceItExits() throws Exception {
        Path image = FileTestSupport.sparse(dir.resolve("child.img"), 1 << 20);
        // flock(1) takes the same kind of lock (flock(2), exclusive) that a read-write mqnbd takes.
        child = new ProcessBuilder(
                        "flock", "--exclusive", "--close", image.toString(), "sh", "-c", "echo locked; sleep 60")
                .redirectErrorStream(true)
                .start();
        var out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
        assertThat(out.readLine()).isEqualTo("locked");

        assertThatThrownBy(() -> open("file:" + image, false))
                .isInstanceOf(IOException.class)
                .hasMessage("file " + image + " is locked: another process holds it open (another mqnbd serving it?);"
                        + " stop that server or serve a copy");

        // --close: only flock itself holds the lock, not the shell it runs.
        child.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
        child.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        Thread.sleep(100);
        assertThat(open("file:" + image, false).queue().limits().readOnly()).isFalse();
    }

    @Test
    void readOnlyExports_shareTheFile() throws Exception {
        Path image = FileTestSupport.sparse(dir.resolve("shared.img"), 1 << 20);

        TestDevice a = open("file:" + image, true);
        TestDevice b = open("file:" + image, true);

        assertThat(a.read(0, 10)).isEqualTo(b.read(0, 10));
        assertThatThrownBy(() -> open("file:" + image, false)).hasMessageContaining("is locked");
    }

    /** Makes {@code file} unwritable even for root: mode 0444, and immutable when running as root. */
    private void makeUnwritable(Path file) throws Exception {
        FileTestSupport.run("chmod", "0444", file.toString());
        if (FileTestSupport.root()) {
            FileTestSupport.run("chattr", "+i", file.toString());
            immutable.add(file);
        }
        assertThat(Files.isWritable(file) && !FileTestSupport.root()).isFalse();
    }

    @Test
    void unwritableFile_isServedReadOnly_andRefusesWrites() throws Exception {
        Path image = dir.resolve("ro.img");
        byte[] content = TestDevice.random(1, 8192);
        Files.write(image, content);
        makeUnwritable(image);

        TestDevice dev = open("file:" + image, false);

        assertThat(dev.queue().limits().readOnly()).isTrue();
        assertThat(dev.read(0, 8192)).isEqualTo(content);
        assertThat(dev.tryWrite(0, 0, 0, new byte[512])).isEqualTo(Status.READ_ONLY);
        assertThat(dev.noData(ReqOp.FLUSH, 0, 0, 0)).isEqualTo(Status.OK);
        assertThat(Files.readAllBytes(image)).isEqualTo(content);
    }

    @Test
    void unwritableFile_readOnlyExport_works() throws Exception {
        Path image = dir.resolve("ro2.img");
        byte[] content = TestDevice.random(2, 4096);
        Files.write(image, content);
        makeUnwritable(image);

        TestDevice dev = open("file:" + image, true);

        assertThat(dev.read(0, 4096)).isEqualTo(content);
        assertThat(dev.noData(ReqOp.DISCARD, 0, 0, 4096)).isEqualTo(Status.READ_ONLY);
    }

    @Test
    void create_onReadOnlyExport_isRefused() {
        Path image = dir.resolve("nope.img");

        assertThatThrownBy(() -> open("file:" + image + ",create=1M", true))
                .isInstanceOf(IOException.class)
                .hasMessage("file " + image + " does not exist, and a read-only export cannot create it");
        assertThat(image).doesNotExist();
    }

    /* --------------- O_DIRECT --------------- */

    @Test
    void direct_advertises4KiB_andRoundTripsUnalignedBuffers() throws Exception {
        Path image = dir.resolve("direct.img");
        TestDevice dev = open("file:" + image + ",create=4M,direct", false);
        assertThat(dev.queue().limits().logicalBlockSize()).isEqualTo(4096);
        byte[] data = TestDevice.random(3, 3 * 4096);
        // A direct buffer whose data starts 1 byte past an allocation: never 4 KiB aligned.
        ByteBuffer unaligned =
                ByteBuffer.allocateDirect(data.length + 1).position(1).slice();
        unaligned.put(0, data);

        assertThat(dev.submit(ReqOp.WRITE, ReqFlags.FUA, 8192, data.length, unaligned))
                .isEqualTo(Status.OK);
        assertThat(dev.submit(ReqOp.WRITE, 0, 65536, data.length, ByteBuffer.wrap(data)))
                .isEqualTo(Status.OK);

        assertThat(dev.read(8192, data.length)).isEqualTo(data);
        assertThat(dev.read(65536, data.length)).isEqualTo(data);
        assertThat(dev.tryRead(0, 100, 4096)).isEqualTo(Status.INVALID);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, ReqFlags.NO_UNMAP, 8192, 4096))
                .isEqualTo(Status.OK);
        assertThat(dev.read(8192, 4096)).isEqualTo(new byte[4096]);
    }

    @Test
    void direct_sizeNotAMultipleOf4KiB_isRefused() throws Exception {
        Path image = FileTestSupport.sparse(dir.resolve("odd.img"), (1 << 20) + 512);

        assertThatThrownBy(() -> open("file:" + image + ",direct", false))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("size 1049088 is not a multiple of 4096");
    }
}
