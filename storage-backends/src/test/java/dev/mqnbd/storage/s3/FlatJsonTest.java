package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class FlatJsonTest {
    @Test
    void write_thenRead_roundTrips() {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("holder", "mqnbd on \"host\", pid 1\\2\n");
        fields.put("expires", 1795129200000L);
        fields.put("small", -3);

        Map<String, String> read = FlatJson.read(FlatJson.write(fields));

        assertThat(read)
                .containsExactly(
                        Map.entry("holder", "mqnbd on \"host\", pid 1\\2\n"),
                        Map.entry("expires", "1795129200000"),
                        Map.entry("small", "-3"));
    }

    @Test
    void read_malformed_saysWhere() {
        assertThatThrownBy(() -> FlatJson.read("{\"a\": 1,}")).hasMessageContaining("at character");
        assertThatThrownBy(() -> FlatJson.read("{\"a\": 1} x")).hasMessageContaining("text after the object");
        assertThatThrownBy(() -> FlatJson.read("{\"a\": 1, \"a\": 2}")).hasMessageContaining("given twice");
        assertThatThrownBy(() -> FlatJson.read("[1]")).hasMessageContaining("expected: '{'");
        assertThatThrownBy(() -> FlatJson.read("{\"a\": \"x")).hasMessageContaining("unexpected end");
    }

    @Test
    void metadata_roundTrips_andRefusesWhatItCannotRead() throws Exception {
        ExportMetadata meta = new ExportMetadata(10L << 30, 1 << 20, 1, Instant.parse("2026-11-21T21:00:00Z"));

        assertThat(ExportMetadata.parse("m", meta.toJson())).isEqualTo(meta);
        assertThat(meta.blockCount()).isEqualTo(10240);
        assertThatThrownBy(() -> ExportMetadata.parse("m", bytes("{\"format\": \"other\"}")))
                .hasMessageContaining("format \"other\" (expected: \"mqnbd-s3-export\"");
        assertThatThrownBy(() -> ExportMetadata.parse(
                        "m",
                        bytes("{\"format\": \"mqnbd-s3-export\", \"version\": 2, \"size\": 1, \"blockSize\": 65536}")))
                .hasMessageContaining("format version 2 (expected: 1; written by a newer mqnbd?)");
        assertThatThrownBy(() -> ExportMetadata.parse(
                        "m",
                        bytes("{\"format\": \"mqnbd-s3-export\", \"version\": 1, \"size\": 1, \"blockSize\": 1000}")))
                .hasMessageContaining("blockSize 1000");
        assertThatThrownBy(() -> ExportMetadata.parse("m", bytes("not json")))
                .hasMessageContaining("is not valid JSON");
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
