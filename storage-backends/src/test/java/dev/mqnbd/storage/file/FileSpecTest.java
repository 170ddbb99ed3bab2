package dev.mqnbd.storage.file;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class FileSpecTest {
    @Test
    void parse_pathOnly() {
        FileSpec spec = FileSpec.parse("/var/lib/disk.img");

        assertThat(spec.path()).isEqualTo(Path.of("/var/lib/disk.img"));
        assertThat(spec.createSize()).isEmpty();
        assertThat(spec.direct()).isFalse();
    }

    @Test
    void parse_options() {
        FileSpec spec = FileSpec.parse("/img,create=10G,direct");

        assertThat(spec.path()).isEqualTo(Path.of("/img"));
        assertThat(spec.createSize()).hasValue(10L << 30);
        assertThat(spec.direct()).isTrue();
    }

    @Test
    void parse_doubledComma_isPartOfThePath() {
        FileSpec spec = FileSpec.parse("/data/a,,b.img,direct");

        assertThat(spec.path()).isEqualTo(Path.of("/data/a,b.img"));
        assertThat(spec.direct()).isTrue();
    }

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                ",direct | file spec: \",direct\": empty path (expected: PATH[,create=SIZE][,direct])",
                "/img,sync | file spec: \"/img,sync\": unknown option \"sync\" (expected: create=SIZE or direct)",
                "/img,direct,direct | file spec: \"/img,direct,direct\": option direct given twice",
                "/img,create=1G,create=2G | file spec: \"/img,create=1G,create=2G\": option create given twice",
                "/img,create=0 | file spec: \"/img,create=0\": create=0 (expected: a positive size)",
                "/img,create=lots | size: \"lots\" (expected: a number of bytes, optionally with K, M, G, T, P or E)",
                "/img, | file spec: \"/img,\": unknown option \"\" (expected: create=SIZE or direct)"
            })
    void parse_bad_isRejected(String spec, String message) {
        assertThatThrownBy(() -> FileSpec.parse(spec))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage(message);
    }
}
