package dev.mqnbd.storage;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.TagSet;
import dev.mqnbd.mq.ThreadHctxExecutor;
import java.nio.ByteBuffer;
import java.util.EnumSet;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link RequestChecks} on a device unlike the memory one: 512-byte logical blocks, a 64 KiB transfer
 * limit, neither DISCARD nor WRITE_ZEROES. The driver ends every request with the check's verdict.
 */
class RequestChecksTest {
    private static final long CAPACITY = 1 << 20;
    private static final int MAX_TRANSFER = 64 << 10;

    private final ThreadHctxExecutor executor = new ThreadHctxExecutor("hctx-0");
    private BlockQueue<Void, Void, Void, Void> queue;

    @AfterEach
    void close() throws Exception {
        if (queue != null) {
            queue.close();
        }
        executor.close();
    }

    private TestDevice open(boolean readOnly) throws Exception {
        QueueLimits limits = new QueueLimits(CAPACITY, 512, 4096, MAX_TRANSFER, 0, EnumSet.of(Feature.FLUSH), readOnly);
        Operations<Void, Void, Void, Void> verdict = new Operations<>() {
            @Override
            public Void initHctx(Void tagSetData, int hctxIndex) {
                return null;
            }

            @Override
            public Void newRequestData() {
                return null;
            }

            @Override
            public Status queueRq(Void hw, Void q, Request<Void> rq, boolean isLast) {
                rq.end(RequestChecks.check(rq, limits));
                return Status.OK;
            }
        };
        queue = BlockQueue.builder(TagSet.builder(verdict).queueDepth(4).build())
                .limits(limits)
                .executors(i -> executor)
                .build();
        return new TestDevice(queue);
    }

    @Test
    void check_wellFormedRequests_pass() throws Exception {
        TestDevice dev = open(false);

        assertThat(dev.submit(ReqOp.READ, 0, 0, 512, ByteBuffer.allocate(512))).isEqualTo(Status.OK);
        assertThat(dev.submit(ReqOp.WRITE, 0, CAPACITY - MAX_TRANSFER, MAX_TRANSFER, ByteBuffer.allocate(MAX_TRANSFER)))
                .isEqualTo(Status.OK);
        assertThat(dev.submit(ReqOp.READ, 0, CAPACITY, 0, ByteBuffer.allocate(0)))
                .isEqualTo(Status.OK);
        assertThat(dev.noData(ReqOp.FLUSH, 0, 0, 0)).isEqualTo(Status.OK);
    }

    @Test
    void check_unsupportedOps_areNotSupported() throws Exception {
        TestDevice dev = open(false);

        assertThat(dev.noData(ReqOp.DISCARD, 0, 0, 512)).isEqualTo(Status.NOT_SUPPORTED);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, 0, 0, 512)).isEqualTo(Status.NOT_SUPPORTED);
    }

    @ParameterizedTest
    @CsvSource({"1, 512", "0, 511", "512, 1", "511, 513"})
    void check_unaligned_isInvalid(long offset, int length) throws Exception {
        TestDevice dev = open(false);

        assertThat(dev.submit(ReqOp.READ, 0, offset, length, ByteBuffer.allocate(length)))
                .isEqualTo(Status.INVALID);
        assertThat(dev.submit(ReqOp.WRITE, 0, offset, length, ByteBuffer.allocate(length)))
                .isEqualTo(Status.INVALID);
    }

    @Test
    void check_longerThanMaxTransfer_isOverflow() throws Exception {
        TestDevice dev = open(false);
        int length = MAX_TRANSFER + 512;

        assertThat(dev.submit(ReqOp.READ, 0, 0, length, ByteBuffer.allocate(length)))
                .isEqualTo(Status.OVERFLOW);
        assertThat(dev.submit(ReqOp.WRITE, 0, 0, length, ByteBuffer.allocate(length)))
                .isEqualTo(Status.OVERFLOW);
    }

    @Test
    void check_readOnly_refusesWritesBeforeRange() throws Exception {
        TestDevice dev = open(true);

        assertThat(dev.submit(ReqOp.WRITE, 0, CAPACITY, 512, ByteBuffer.allocate(512)))
                .isEqualTo(Status.READ_ONLY);
        assertThat(dev.submit(ReqOp.READ, 0, CAPACITY, 512, ByteBuffer.allocate(512)))
                .isEqualTo(Status.INVALID);
        assertThat(dev.noData(ReqOp.FLUSH, 0, 0, 0)).isEqualTo(Status.OK);
    }

    @ParameterizedTest
    @CsvSource({
        "0, 0, 0, true",
        "0, 4096, 4096, true",
        "4096, 0, 4096, true",
        "4096, 1, 4096, false",
        "-1, 1, 4096, false",
        "0, -1, 4096, false",
        "9223372036854775807, 1, 4096, false",
        "1, 9223372036854775807, 9223372036854775807, false",
        "0, 9223372036854775807, 9223372036854775807, true"
    })
    void inRange_edges(long offset, long length, long capacity, boolean expected) {
        assertThat(RequestChecks.inRange(offset, length, capacity)).isEqualTo(expected);
    }
}
