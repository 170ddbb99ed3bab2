/**
 * Restarts and upgrades without client I/O errors: serving on listening sockets the service manager passes
 * ({@link dev.mqnbd.server.lifecycle.SocketActivation}), and handing a running server's sockets, exports and
 * clients over to a new process ({@link dev.mqnbd.server.lifecycle.HandoverControl} on the running side, {@link
 * dev.mqnbd.server.lifecycle.Takeover} on the new one), tied together for {@code mqnbd serve} by {@link
 * dev.mqnbd.server.lifecycle.Lifecycle}.
 *
 * <p>The control protocol, over the Unix socket given with {@code --control}, in lines of ASCII text: the new
 * process sends {@code TAKEOVER <pid>}; the running one answers {@code LISTENERS <n> <pid>} followed by its
 * {@code n} listening sockets (one {@code SCM_RIGHTS} message each), stops accepting, drains, makes its exports
 * durable, releases them and answers {@code RELEASED <requests answered while draining> <milliseconds>}.
 */
@NullMarked
package dev.mqnbd.server.lifecycle;

import org.jspecify.annotations.NullMarked;
