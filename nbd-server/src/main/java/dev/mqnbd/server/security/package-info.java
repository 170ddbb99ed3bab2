/**
 * Who may connect and to what: {@link dev.mqnbd.server.security.TlsCredentials} loads the server's X.509
 * certificate, key and CA from PEM files for {@code NBD_OPT_STARTTLS}; {@link
 * dev.mqnbd.server.security.AccessList} decides per export which clients may see and use it, by address
 * ({@link dev.mqnbd.server.security.Cidr}) and by verified certificate subject ({@link
 * dev.mqnbd.server.security.SubjectPattern}).
 */
@NullMarked
package dev.mqnbd.server.security;

import org.jspecify.annotations.NullMarked;
