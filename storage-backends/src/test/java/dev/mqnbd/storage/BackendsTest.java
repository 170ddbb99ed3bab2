package dev.mqnbd.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.ThreadHctxExecutor;
import dev.mqnbd.storage.memory.MemoryBackend;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class BackendsTest {
    private final ThreadHctxExecutor executor = new ThreadHctxExecutor("hctx-0");
    private final QueueSetup setup = new QueueSetup("disk", 1, 8, i -> executor, Duration.ZERO);

    @AfterEach
    void stopExecutor() {
        executor.close();
    }

    @Test
    void all_listsMemoryBackend() {
        assertThat(Backends.all()).anySatisfy(b -> assertThat(b).isInstanceOf(MemoryBackend.class));
        assertThat(Backends.all()).extracting(Backend::scheme).doesNotHaveDuplicates();
    }

    @Test
    void forSpec_memory_returnsMemoryBackend() {
        Backend backend = Backends.forSpec("memory:1G");

        assertThat(backend).isInstanceOf(MemoryBackend.class);
        assertThat(backend.scheme()).isEqualTo("memory");
        assertThat(backend.usage()).startsWith("memory:SIZE").contains("memory:1T");
    }

    @Test
    void open_memory1G_opensQueueOfThatSize() throws Exception {
        BlockQueue<?, ?, ?, ?> queue = Backends.open("memory:1G", DeviceOptions.DEFAULT, setup);
        try {
            assertThat(queue.name()).isEqualTo("disk");
            assertThat(queue.limits().capacity()).isEqualTo(1L << 30);
            assertThat(queue.limits().readOnly()).isFalse();
            assertThat(queue.hwQueues()).isEqualTo(1);
            assertThat(queue.tagSet().queueDepth()).isEqualTo(8);
        } finally {
            queue.close();
        }
    }

    @Test
    void open_readOnlyOption_givesReadOnlyLimits() throws Exception {
        BlockQueue<?, ?, ?, ?> queue = Backends.open("memory:1M", new DeviceOptions(true), setup);
        try {
            assertThat(queue.limits().readOnly()).isTrue();
        } finally {
            queue.close();
        }
    }

    @Test
    void forSpec_unknownScheme_namesKnownSchemes() {
        assertThatThrownBy(() -> Backends.forSpec("nope:1G"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("export spec: \"nope:1G\": unknown backend \"nope\" (expected: one of ")
                .hasMessageContaining("memory");
    }

    @Test
    void forSpec_missingScheme_saysWhatIsExpected() {
        assertThatThrownBy(() -> Backends.forSpec("1G"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("export spec: \"1G\" (expected: SCHEME:..., one of ")
                .hasMessageContaining("memory");
        assertThatThrownBy(() -> Backends.forSpec(":1G"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("export spec: \":1G\" (expected: SCHEME:...");
    }

    @Test
    void open_badMemorySize_isRejectedWithExpectation() {
        assertThatThrownBy(() -> Backends.open("memory:1000", DeviceOptions.DEFAULT, setup))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("size: 1000 (expected: a positive multiple of 512)");
        assertThatThrownBy(() -> Backends.open("memory:", DeviceOptions.DEFAULT, setup))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("size: \"\" (expected: a number of bytes");
    }
}
