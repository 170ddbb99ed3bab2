package com.example.disks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mqnbd.filter.FaultRule;
import dev.mqnbd.junit.MqnbdExtension;
import dev.mqnbd.junit.NbdExport;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import java.net.URI;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A disk image copied to an NBD export and back with libnbd's nbdcopy and qemu-img, against an in-process
 * mqnbd server that the JUnit extension starts for this class; then a read error injected under the file
 * system's superblock, which the copy must report.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DiskImageTest {
    private static final long IMAGE_SIZE = 32L << 20;

    @RegisterExtension
    static final MqnbdExtension NBD =
            MqnbdExtension.create(server -> server.export("disk", "memory:64M").faultInjection("disk"));

    @TempDir
    static Path tmp;

    private static Path image;

    @BeforeAll
    static void makeImage() throws Exception {
        image = Tools.ext4Image(tmp.resolve("fs.img"), IMAGE_SIZE, "hello from mqnbd\n");
    }

    @Test
    @Order(1)
    void fileSystemImage_writtenWithNbdcopy_readsBackWithQemuImg(@NbdExport("disk") URI disk) throws Exception {
        Tools.run("nbdcopy", image.toString(), disk.toString()).checked();
        // The server's side: the export holds exactly the image.
        assertEquals(Tools.sha256(image, IMAGE_SIZE), NBD.export("disk").sha256(0, IMAGE_SIZE));

        Path back = tmp.resolve("back.img");
        Tools.run("qemu-img", "convert", "-f", "raw", "-O", "raw", disk.toString(), back.toString())
                .checked();
        assertEquals(Tools.sha256(image, IMAGE_SIZE), Tools.sha256(back, IMAGE_SIZE));
        assertEquals("hello from mqnbd\n", Tools.helloTxt(back));
    }

    @Test
    @Order(2)
    void readErrorUnderTheSuperblock_failsTheCopy(@NbdExport("disk") URI disk) throws Exception {
        // ext4's superblock is at byte 1024.
        FaultRule eio = NBD.export("disk")
                .faults()
                .add(FaultRule.on(ReqOp.READ).range(1024, 2048).fail(Status.IO_ERROR));
        try {
            Tools.Result copy = Tools.run("nbdcopy", disk.toString(), tmp.resolve("broken.img").toString());
            assertNotEquals(0, copy.exit(), copy.output());
            assertTrue(copy.output().contains("Input/output error"), copy.output());
            assertTrue(eio.injected() > 0, "the rule failed no read");
        } finally {
            NBD.export("disk").faults().remove(eio);
        }
        Tools.run("nbdcopy", disk.toString(), tmp.resolve("mended.img").toString()).checked();
    }
}
