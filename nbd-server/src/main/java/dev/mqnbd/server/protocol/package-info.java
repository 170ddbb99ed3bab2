/**
 * The NBD wire protocol over Netty: the fixed-newstyle handshake ({@link
 * dev.mqnbd.server.protocol.NbdHandshakeHandler}), the transmission request decoder ({@link
 * dev.mqnbd.server.protocol.NbdRequestDecoder}) and the reply encoding ({@link
 * dev.mqnbd.server.protocol.NbdReplyEncoder}). Nothing here touches storage.
 *
 * <p>A connection's pipeline starts with an {@code NbdHandshakeHandler}; when the client ends option
 * haggling with {@code NBD_OPT_GO} or {@code NBD_OPT_EXPORT_NAME}, an {@link
 * dev.mqnbd.server.protocol.NbdTransmissionStarter} adds the transmission handlers behind it and the
 * handshake handler removes itself, passing on any bytes the client already sent. {@code NBD_OPT_STARTTLS}
 * works the same way: an {@code SslHandler} and a fresh handshake handler go in behind the old one, which
 * removes itself ({@link dev.mqnbd.server.protocol.NbdTls}). Which client may use which export is the
 * business of {@link dev.mqnbd.server.protocol.NbdExports#allows}, given an {@link
 * dev.mqnbd.server.protocol.NbdPeer}.
 *
 * <p>Values that may be {@code null} say so in their Javadoc; everything else is non-null.
 *
 * @see <a href="https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md">proto.md</a>
 */
@NullMarked
package dev.mqnbd.server.protocol;

import org.jspecify.annotations.NullMarked;
