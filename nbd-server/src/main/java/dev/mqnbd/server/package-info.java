/**
 * The mqnbd server: {@link dev.mqnbd.server.NbdServer} binds the listeners, {@link
 * dev.mqnbd.server.ExportRegistry} holds the exports, each an mq-core {@link dev.mqnbd.mq.BlockQueue}
 * opened from a backend spec. {@link dev.mqnbd.server.NbdServerConfig} sets TLS and the limits: the
 * handshake deadline ({@code HandshakeDeadline}) and the connection caps ({@code ConnectionLimiter}).
 */
@NullMarked
package dev.mqnbd.server;

import org.jspecify.annotations.NullMarked;
