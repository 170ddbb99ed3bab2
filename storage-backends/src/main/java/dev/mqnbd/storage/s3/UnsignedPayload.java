package dev.mqnbd.storage.s3;

import java.util.concurrent.CompletableFuture;
import software.amazon.awssdk.http.SdkHttpRequest;
import software.amazon.awssdk.http.auth.aws.scheme.AwsV4AuthScheme;
import software.amazon.awssdk.http.auth.aws.signer.AwsV4HttpSigner;
import software.amazon.awssdk.http.auth.spi.signer.AsyncSignRequest;
import software.amazon.awssdk.http.auth.spi.signer.AsyncSignedRequest;
import software.amazon.awssdk.http.auth.spi.signer.SignRequest;
import software.amazon.awssdk.http.auth.spi.signer.SignedRequest;
import software.amazon.awssdk.identity.spi.AwsCredentialsIdentity;
import software.amazon.awssdk.identity.spi.IdentityProvider;
import software.amazon.awssdk.identity.spi.IdentityProviders;

/**
 * SigV4 that sends {@code x-amz-content-sha256: UNSIGNED-PAYLOAD} over plain http too ({@code
 * s3.unsigned-payload}). The SDK signs only the headers over https, where TLS protects the body, but hashes
 * every body over http; for a store on a trusted network that SHA-256 costs CPU on both sides (the store
 * checks it) and guards against nothing TCP and the upload's CRC32C do not. The request is signed as if it
 * went over https (the scheme is not part of what SigV4 signs: method, path, query, headers, the payload's
 * hash) and then sent over http as it was. The headers stay signed, so credentials are as safe as before;
 * the body is not, so a party on the path could change it undetected where the store does not check the
 * CRC32C.
 *
 * <p><b>Threading:</b> stateless; safe for concurrent use.
 */
final class UnsignedPayload implements AwsV4AuthScheme {
    private final AwsV4AuthScheme sigV4 = AwsV4AuthScheme.create();
    private final AwsV4HttpSigner signer = new Signer(sigV4.signer());

    @Override
    public String schemeId() {
        return sigV4.schemeId();
    }

    @Override
    public IdentityProvider<AwsCredentialsIdentity> identityProvider(IdentityProviders providers) {
        return sigV4.identityProvider(providers);
    }

    @Override
    public AwsV4HttpSigner signer() {
        return signer;
    }

    private record Signer(AwsV4HttpSigner sigV4) implements AwsV4HttpSigner {
        @Override
        public SignedRequest sign(SignRequest<? extends AwsCredentialsIdentity> request) {
            String protocol = request.request().protocol();
            if ("https".equals(protocol)) {
                return sigV4.sign(request);
            }
            SignedRequest signed = sigV4.sign(request.copy(b -> b.request(withProtocol(request.request(), "https"))));
            return signed.copy(b -> b.request(withProtocol(signed.request(), protocol)));
        }

        @Override
        public CompletableFuture<AsyncSignedRequest> signAsync(
                AsyncSignRequest<? extends AwsCredentialsIdentity> request) {
            // The clients here are synchronous; an asynchronous request is signed as the SDK would.
            return sigV4.signAsync(request);
        }

        private static SdkHttpRequest withProtocol(SdkHttpRequest request, String protocol) {
            return request.toBuilder().protocol(protocol).build();
        }
    }
}
