package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.storage.Backends;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class S3SpecTest {
    /* --------------- accepted --------------- */

    @Test
    void parse_bucketAndPrefix() {
        S3Spec spec = S3Spec.parse("//my-bucket/disks/disk1");

        assertThat(spec.names()).isEqualTo(new ObjectNames("my-bucket", "disks/disk1"));
        assertThat(spec.createSize()).isEmpty();
        assertThat(spec.blockSize()).isEmpty();
        assertThat(spec.overwrite()).isFalse();
        assertThat(spec.blockSizeOrDefault()).isEqualTo(1 << 20);
    }

    @ParameterizedTest
    @CsvSource({"//bucket, ''", "//bucket/, ''", "//bucket/a, a", "//bucket/a/b/, a/b", "//bucket/a//, a"})
    void parse_emptyOrSlashedPrefix(String text, String prefix) {
        assertThat(S3Spec.parse(text).names()).isEqualTo(new ObjectNames("bucket", prefix));
    }

    @Test
    void parse_everyOption() {
        S3Spec spec = S3Spec.parse("//b.u-c_k/p,create=10G,block-size=64K,overwrite");

        assertThat(spec.createSize()).hasValue(10L << 30);
        assertThat(spec.blockSize()).hasValue(64 << 10);
        assertThat(spec.overwrite()).isTrue();
    }

    @Test
    void parse_doubledCommaInPrefix_isAComma() {
        assertThat(S3Spec.parse("//bucket/a,,b,create=1M").names().prefix()).isEqualTo("a,b");
    }

    @Test
    void forSpec_s3_stripsTheScheme() {
        assertThat(Backends.forSpec("s3://bucket/p")).isInstanceOf(S3Backend.class);
        assertThat(new S3Backend().usage()).startsWith("s3://BUCKET/PREFIX").contains("create=SIZE");
    }

    /* --------------- refused --------------- */

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "bucket/p                       | missing \"//\"",
                "//                             | bucket \"\"",
                "//ab                           | bucket \"ab\"",
                "//bad bucket/p                 | bucket \"bad bucket\"",
                "//bucket//p                    | empty segment",
                "//bucket/a//b                  | empty segment",
                "//bucket/p,create=0            | create=0 (expected: a positive multiple of 512)",
                "//bucket/p,create=1000         | create=1000",
                "//bucket/p,create=lots         | size: \"lots\"",
                "//bucket/p,block-size=4K       | block-size=4K (expected: a power of two from 64K to 64M)",
                "//bucket/p,block-size=128M     | block-size=128M",
                "//bucket/p,block-size=96K      | block-size=96K",
                "//bucket/p,create=1G,create=2G | option create given twice",
                "//bucket/p,overwrite           | overwrite needs create=SIZE",
                "//bucket/p,create=1G,fast      | unknown option \"fast\"",
                "//bucket/p,                    | unknown option \"\"",
            })
    void parse_malformed_throwsWithReason(String text, String reason) {
        assertThatThrownBy(() -> S3Spec.parse(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(reason);
    }

    @Test
    void parse_prefixTooLongForKeys_isRefused() {
        assertThatThrownBy(() -> S3Spec.parse("//bucket/" + "x".repeat(1010)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("too long");
    }

    /* --------------- object names --------------- */

    @Test
    void names_joinPrefixWithSlash_onlyWhenNotEmpty() {
        ObjectNames nested = new ObjectNames("b", "disks/d1");
        ObjectNames root = new ObjectNames("b", "");

        assertThat(nested.metadata()).isEqualTo("disks/d1/mqnbd-export.json");
        assertThat(nested.lease()).isEqualTo("disks/d1/mqnbd-lease.json");
        assertThat(nested.block(0x1234)).isEqualTo("disks/d1/blocks/0000000000001234");
        assertThat(root.metadata()).isEqualTo("mqnbd-export.json");
        assertThat(root.block(255)).isEqualTo("blocks/00000000000000ff");
    }

    @Test
    void names_blockIndex_parsesOnlyBlockKeys() {
        ObjectNames names = new ObjectNames("b", "p");

        assertThat(names.blockIndex("p/blocks/00000000000000ff")).isEqualTo(255);
        assertThat(names.blockIndex("p/blocks/00000000000000FF")).isEqualTo(-1);
        assertThat(names.blockIndex("p/blocks/ff")).isEqualTo(-1);
        assertThat(names.blockIndex("q/blocks/00000000000000ff")).isEqualTo(-1);
        assertThat(names.blockIndex("p/mqnbd-export.json")).isEqualTo(-1);
    }
}
