/**
 * The transmission phase: {@link dev.mqnbd.server.handler.TransmissionHandler} turns each decoded NBD
 * command into one mq-core {@link dev.mqnbd.mq.Request}, after {@link
 * dev.mqnbd.server.handler.RequestValidator} has checked it, and encodes the replies.
 */
@NullMarked
package dev.mqnbd.server.handler;

import org.jspecify.annotations.NullMarked;
