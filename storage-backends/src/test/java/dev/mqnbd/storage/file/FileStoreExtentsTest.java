package dev.mqnbd.storage.file;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** {@link FileStore#extents} against real sparse files on the build's file system. */
class FileStoreExtentsTest {
    record Run(long offset, long length, boolean hole) {}

    private Path dir;
    private final List<FileStore> stores = new ArrayList<>();

    @BeforeEach
    void createDir() throws Exception {
        Path base = Path.of("target", "file-tests").toAbsolutePath();
        Files.createDirectories(base);
        dir = Files.createTempDirectory(base, "extents");
    }

    @AfterEach
    void cleanUp() throws Exception {
        stores.forEach(FileStore::close);
        FileTestSupport.deleteTree(dir);
    }

    private FileStore store(Path file) throws Exception {
        FileStore store = FileOpener.open(FileSpec.parse(file.toString()), true, "x", null);
        stores.add(store);
        return store;
    }

    private static List<Run> runs(FileStore store, long offset, long length) throws Exception {
        List<Run> runs = new ArrayList<>();
        store.extents(offset, length, (o, l, h) -> runs.add(new Run(o, l, h)));
        return runs;
    }

    private static void writeAt(Path file, long offset, int length) throws Exception {
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.seek(offset);
            raf.write(filled(length));
        }
    }

    private static byte[] filled(int length) {
        byte[] b = new byte[length];
        java.util.Arrays.fill(b, (byte) 7);
        return b;
    }

    @Test
    void sparseFile_allHole() throws Exception {
        Path file = FileTestSupport.sparse(dir.resolve("empty.img"), 8 << 20);

        assertThat(runs(store(file), 0, 8 << 20)).containsExactly(new Run(0, 8 << 20, true));
    }

    @Test
    void dataAndHoles_matchSeekDataSeekHole_andClipToTheRange() throws Exception {
        Path file = FileTestSupport.sparse(dir.resolve("mixed.img"), 8 << 20);
        writeAt(file, 1 << 20, 128 << 10);
        writeAt(file, 6 << 20, 4096);
        FileStore store = store(file);

        assertThat(runs(store, 0, 8 << 20))
                .containsExactly(
                        new Run(0, 1 << 20, true),
                        new Run(1 << 20, 128 << 10, false),
                        new Run((1 << 20) + (128 << 10), (5 << 20) - (128 << 10), true),
                        new Run(6 << 20, 4096, false),
                        new Run((6 << 20) + 4096, (2 << 20) - 4096, true));
        // A window that starts inside data and ends inside a hole; and one past the end is clipped.
        assertThat(runs(store, (1 << 20) + 4096, 1 << 20))
                .containsExactly(
                        new Run((1 << 20) + 4096, (128 << 10) - 4096, false),
                        new Run((1 << 20) + (128 << 10), (1 << 20) - (124 << 10), true));
        assertThat(runs(store, (8 << 20) - 4096, 1 << 20)).containsExactly(new Run((8 << 20) - 4096, 4096, true));
    }

    @Test
    void fullyWrittenFile_allData() throws Exception {
        Path file = dir.resolve("full.img");
        Files.write(file, filled(300_000));

        assertThat(runs(store(file), 0, 300_000)).containsExactly(new Run(0, 300_000, false));
    }

    @Test
    void consumerMayStopEarly() throws Exception {
        Path file = FileTestSupport.sparse(dir.resolve("stop.img"), 8 << 20);
        writeAt(file, 1 << 20, 4096);
        List<Run> runs = new ArrayList<>();

        store(file).extents(0, 8 << 20, (o, l, h) -> {
            runs.add(new Run(o, l, h));
            return false;
        });

        assertThat(runs).containsExactly(new Run(0, 1 << 20, true));
    }
}
