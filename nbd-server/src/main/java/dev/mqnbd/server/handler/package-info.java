/**
 * The transmission phase: {@link dev.mqnbd.server.handler.TransmissionHandler} turns each decoded NBD
 * command into one mq-core {@link dev.mqnbd.mq.Request}, after {@link
 * dev.mqnbd.server.handler.RequestValidator} has checked it, and answers each with a reply. Each job of
 * the phase has its own class: preparing requests, back-pressure, splitting long ranges, replies, the
 * connection's end (see {@code TransmissionHandler}).
 */
@NullMarked
package dev.mqnbd.server.handler;

import org.jspecify.annotations.NullMarked;
