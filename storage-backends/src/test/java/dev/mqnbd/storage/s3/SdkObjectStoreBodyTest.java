package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Map;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;

/** How a GET's body is read: into an array of the announced length, and never silently short or long. */
class SdkObjectStoreBodyTest {
    private static final byte[] BODY = bytes(70_000);

    private static byte[] bytes(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 31 + 7);
        }
        return b;
    }

    private static GetObjectResponse response(Long length) {
        return GetObjectResponse.builder()
                .contentLength(length)
                .eTag("\"e1\"")
                .metadata(Map.of("crc32c", "x"))
                .build();
    }

    /** A stream that hands out at most 1000 bytes per read, as a socket does. */
    private static InputStream trickle(byte[] data) {
        ByteArrayInputStream source = new ByteArrayInputStream(data);
        return new InputStream() {
            @Override
            public int read() {
                return source.read();
            }

            @Override
            public int read(byte[] b, int off, int len) {
                return source.read(b, off, Math.min(len, 1000));
            }
        };
    }

    @Test
    void announcedLength_readWhole_evenInSmallPieces() throws IOException {
        ObjectStore.StoredObject stored =
                SdkObjectStore.readBody(response((long) BODY.length), trickle(BODY), byte[]::new);

        assertThat(stored.data()).isEqualTo(BODY);
        assertThat(stored.etag()).isEqualTo("\"e1\"");
        assertThat(stored.metadata()).containsEntry("crc32c", "x");
    }

    @Test
    void bodyShorterThanAnnounced_isAnError() {
        assertThatThrownBy(() -> SdkObjectStore.readBody(response((long) BODY.length + 1), trickle(BODY), byte[]::new))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("70000 bytes where Content-Length said 70001");
    }

    @Test
    void bodyLongerThanAnnounced_isAnError() {
        assertThatThrownBy(() -> SdkObjectStore.readBody(response((long) BODY.length - 1), trickle(BODY), byte[]::new))
                .isInstanceOf(IOException.class);
    }

    @Test
    void noAnnouncedLength_readsToTheEnd() throws IOException {
        assertThat(SdkObjectStore.readBody(response(null), trickle(BODY), byte[]::new)
                        .data())
                .isEqualTo(BODY);
    }
}
