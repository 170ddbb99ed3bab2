package dev.mqnbd.storage.s3;

import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Starts the JVM's one {@link S3ProxyServer} before the first test class that needs it, and stops it
 * when the whole run ends (it lives in the root context's store, which closes it).
 */
final class S3ProxyExtension implements BeforeAllCallback {
    private static final ExtensionContext.Namespace NAMESPACE =
            ExtensionContext.Namespace.create(S3ProxyExtension.class);

    private static volatile S3ProxyServer server;

    @Override
    public void beforeAll(ExtensionContext context) {
        server = context.getRoot()
                .getStore(NAMESPACE)
                .getOrComputeIfAbsent(S3ProxyServer.class, k -> S3ProxyServer.start(), S3ProxyServer.class);
    }

    /** Returns the running server; only valid in a class extended with this extension. */
    static S3ProxyServer server() {
        S3ProxyServer s = server;
        if (s == null) {
            throw new IllegalStateException("S3Proxy is not running: extend the test class with S3ProxyExtension");
        }
        return s;
    }
}
