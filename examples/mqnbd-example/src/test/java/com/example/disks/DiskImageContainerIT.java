package com.example.disks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mqnbd.testcontainers.MqnbdContainer;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The same round trip against mqnbd in a container (the {@code mqnbd:latest} image, built locally), with a
 * second export whose writes all fail with ENOSPC, as a full disk would.
 */
class DiskImageContainerIT {
    private static final long IMAGE_SIZE = 32L << 20;

    static final MqnbdContainer NBD = new MqnbdContainer()
            .withExport("disk", "memory:64M")
            .withExport("full", "memory:64M")
            .withFilter("full", "error,rate=100%,ops=write,status=ENOSPC");

    @TempDir
    static Path tmp;

    private static Path image;

    @BeforeAll
    static void start() throws Exception {
        image = Tools.ext4Image(tmp.resolve("fs.img"), IMAGE_SIZE, "hello from a container\n");
        NBD.start();
    }

    @AfterAll
    static void stop() {
        NBD.stop();
    }

    @Test
    void fileSystemImage_writtenWithQemuImg_readsBackWithNbdcopy() throws Exception {
        Tools.run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", image.toString(), NBD.getNbdUri("disk"))
                .checked();
        Path back = tmp.resolve("back.img");
        Tools.run("nbdcopy", NBD.getNbdUri("disk"), back.toString()).checked();
        assertEquals(Tools.sha256(image, IMAGE_SIZE), Tools.sha256(back, IMAGE_SIZE));
        assertEquals("hello from a container\n", Tools.helloTxt(back));
    }

    @Test
    void fullDisk_failsTheWrite() throws Exception {
        Tools.Result write = Tools.run(
                "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", image.toString(), NBD.getNbdUri("full"));
        assertNotEquals(0, write.exit(), write.output());
        assertTrue(write.output().contains("No space left on device"), write.output());
        assertTrue(NBD.getLogs().contains("export \"full\": error("), NBD.getLogs());
    }
}
