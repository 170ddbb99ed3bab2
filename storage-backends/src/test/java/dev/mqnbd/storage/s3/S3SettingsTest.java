package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.storage.DeviceOptions;
import java.net.URI;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class S3SettingsTest {
    private static S3Settings parse(String... kv) {
        Map<String, String> settings = new java.util.HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            settings.put(kv[i], kv[i + 1]);
        }
        return S3Settings.parse(new DeviceOptions(false, settings));
    }

    @Test
    void parse_nothing_givesDefaults() {
        S3Settings s = parse();

        assertThat(s.endpoint()).isEmpty();
        assertThat(s.region()).isEmpty();
        assertThat(s.pathStyle()).isFalse();
        assertThat(s.cacheBytes()).isEqualTo(256L << 20);
        assertThat(s.maxDirtyBytes())
                .isEqualTo(S3Settings.defaultMaxDirty(Runtime.getRuntime().maxMemory(), 256L << 20));
        assertThat(s.writebackAge()).isEqualTo(Duration.ofSeconds(30));
        assertThat(s.uploads()).isEqualTo(16);
        assertThat(s.timeout()).isEqualTo(Duration.ofSeconds(20));
        assertThat(s.leaseTtl()).isEqualTo(Duration.ofSeconds(30));
        assertThat(s.readAhead()).isEqualTo(4);
        assertThat(S3Settings.DEFAULT).isEqualTo(s);
    }

    @Test
    void defaultMaxDirty_isHalfTheHeapBesideTheCache_from64MTo2G() {
        assertThat(S3Settings.defaultMaxDirty(4L << 30, 256L << 20)).isEqualTo(1920L << 20);
        assertThat(S3Settings.defaultMaxDirty(6L << 30, 256L << 20)).isEqualTo(2L << 30);
        assertThat(S3Settings.defaultMaxDirty(512L << 20, 256L << 20)).isEqualTo(128L << 20);
        assertThat(S3Settings.defaultMaxDirty(256L << 20, 256L << 20)).isEqualTo(64L << 20);
        assertThat(S3Settings.defaultMaxDirty((1L << 30) + 12345, 0)).isEqualTo(512L << 20);
    }

    @Test
    void parse_everyKey() {
        S3Settings s = parse(
                "s3.endpoint", "http://127.0.0.1:9000",
                "s3.region", "eu-west-1",
                "s3.path-style", "TRUE",
                "s3.cache", "1G",
                "s3.max-dirty", "8M",
                "s3.writeback-age", "0",
                "s3.uploads", "4",
                "s3.timeout", "500ms",
                "s3.lease-ttl", "2m",
                "s3.read-ahead", "0",
                "file.other", "ignored");

        assertThat(s.endpoint()).hasValue(URI.create("http://127.0.0.1:9000"));
        assertThat(s.region()).hasValue("eu-west-1");
        assertThat(s.pathStyle()).isTrue();
        assertThat(s.cacheBytes()).isEqualTo(1L << 30);
        assertThat(s.maxDirtyBytes()).isEqualTo(8L << 20);
        assertThat(s.writebackAge()).isZero();
        assertThat(s.uploads()).isEqualTo(4);
        assertThat(s.timeout()).isEqualTo(Duration.ofMillis(500));
        assertThat(s.leaseTtl()).isEqualTo(Duration.ofMinutes(2));
        assertThat(s.readAhead()).isZero();
    }

    @ParameterizedTest
    @CsvSource({"20, 20000", "20s, 20000", "1500ms, 1500", " 7S , 7000"})
    void parse_timeout_secondsByDefault(String text, long millis) {
        assertThat(parse("s3.timeout", text).timeout()).isEqualTo(Duration.ofMillis(millis));
    }

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "s3.endpoint   | localhost:9000 | s3.endpoint: \"localhost:9000\" (expected: an http or https URL",
                "s3.endpoint   | ftp://host     | (expected: an http or https URL",
                "s3.region     | EU WEST        | s3.region: \"EU WEST\" (expected: a region name",
                "s3.path-style | yes            | s3.path-style: \"yes\" (expected: true or false)",
                "s3.cache      | lots           | s3.cache: \"lots\" (expected: a size such as 64M)",
                "s3.max-dirty  | 0              | s3.max-dirty: \"0\" (expected: at least 1 bytes)",
                "s3.uploads    | 0              | s3.uploads: 0 (expected: 1 to 1024)",
                "s3.uploads    | many           | s3.uploads: \"many\" (expected: a number from 1 to 1024)",
                "s3.timeout    | 30s            | s3.timeout: \"30s\" (expected: 100ms to 25s, so that every request ends before",
                "s3.timeout    | 10ms           | s3.timeout: \"10ms\" (expected: 100ms to 25s",
                "s3.timeout    | soon           | s3.timeout: \"soon\" (expected: a duration such as 20s or 500ms)",
                "s3.lease-ttl  | 500ms          | s3.lease-ttl: \"500ms\" (expected: 1s to 1h)",
                "s3.writeback-age | 2h          | s3.writeback-age: \"2h\" (expected: 0s to 1h)",
                "s3.read-ahead | -1             | s3.read-ahead: -1 (expected: 0 to 1024)",
                "s3.cahce      | 1G             | setting s3.cahce: unknown (expected: one of s3.endpoint, s3.region",
            })
    void parse_malformed_throwsNamingTheKey(String key, String value, String message) {
        assertThatThrownBy(() -> parse(key, value))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(message);
    }

    @Test
    void region_settingWins_elseSdkChain_elseUsEast1WithAnEndpoint() throws Exception {
        String old = System.getProperty("aws.region");
        try {
            System.setProperty("aws.region", "eu-west-3");
            assertThat(S3Clients.region(parse("s3.endpoint", "http://127.0.0.1:1"))
                            .id())
                    .isEqualTo("eu-west-3");
            assertThat(S3Clients.region(parse("s3.region", "eu-central-1")).id())
                    .isEqualTo("eu-central-1");

            System.clearProperty("aws.region");
            String env = System.getenv("AWS_REGION");
            assertThat(S3Clients.region(parse("s3.endpoint", "http://127.0.0.1:1"))
                            .id())
                    .isEqualTo(env != null ? env : "us-east-1");
        } finally {
            if (old != null) {
                System.setProperty("aws.region", old);
            } else {
                System.clearProperty("aws.region");
            }
        }
    }

    @Test
    void blockRequestsGoDirectUnlessTheSdkIsAskedFor() {
        assertThat(parse().directBlocks()).isTrue();
        assertThat(parse(S3Settings.BLOCK_CLIENT, "direct").directBlocks()).isTrue();
        assertThat(parse(S3Settings.BLOCK_CLIENT, " SDK ").directBlocks()).isFalse();
        assertThatThrownBy(() -> parse(S3Settings.BLOCK_CLIENT, "curl"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("s3.block-client: \"curl\" (expected: direct or sdk)");
    }
}
