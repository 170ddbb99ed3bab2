package dev.mqnbd.server.security;

import io.netty.handler.ssl.util.SimpleTrustManagerFactory;
import java.io.IOException;
import java.net.Socket;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.List;
import javax.net.ssl.ManagerFactoryParameters;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * Verifies client certificates against the CA certificates (the JDK's PKIX checks), but names no CA in the
 * TLS {@code CertificateRequest}.
 *
 * <p>Why: given CA names, GnuTLS 3.7 clients (qemu and libnbd on Debian 12) pick a client certificate only if
 * its key type appears in the request's signature schemes, and in TLS 1.3 the JDK lists RSA only as RSA-PSS;
 * GnuTLS then sends no RSA certificate at all, and the handshake fails. Without CA names a client with one
 * certificate sends it (RFC 8446 4.3.2 lets the client choose), and the server still verifies it.
 *
 * <p><b>Threading:</b> immutable; the trust manager is thread-safe.
 */
final class ClientCaTrust extends SimpleTrustManagerFactory {
    private final X509ExtendedTrustManager manager;

    ClientCaTrust(List<X509Certificate> cas) throws GeneralSecurityException, IOException {
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, null);
        for (int i = 0; i < cas.size(); i++) {
            store.setCertificateEntry("ca-" + i, cas.get(i));
        }
        TrustManagerFactory pkix = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        pkix.init(store);
        X509ExtendedTrustManager delegate = null;
        for (TrustManager tm : pkix.getTrustManagers()) {
            if (tm instanceof X509ExtendedTrustManager x) {
                delegate = x;
            }
        }
        if (delegate == null) {
            throw new GeneralSecurityException("no X.509 trust manager for the CA certificates");
        }
        this.manager = new NamelessIssuers(delegate);
    }

    @Override
    protected void engineInit(KeyStore keyStore) {}

    @Override
    protected void engineInit(ManagerFactoryParameters parameters) {}

    @Override
    protected TrustManager[] engineGetTrustManagers() {
        return new TrustManager[] {manager};
    }

    /** Delegates every check; reports no accepted issuers, so that none are named to clients. */
    private static final class NamelessIssuers extends X509ExtendedTrustManager {
        private final X509ExtendedTrustManager delegate;

        NamelessIssuers(X509ExtendedTrustManager delegate) {
            this.delegate = delegate;
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            delegate.checkClientTrusted(chain, authType);
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
                throws CertificateException {
            delegate.checkClientTrusted(chain, authType, socket);
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
                throws CertificateException {
            delegate.checkClientTrusted(chain, authType, engine);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            delegate.checkServerTrusted(chain, authType);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
                throws CertificateException {
            delegate.checkServerTrusted(chain, authType, socket);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
                throws CertificateException {
            delegate.checkServerTrusted(chain, authType, engine);
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return new X509Certificate[0];
        }
    }
}
