/**
 * The mqnbd server: {@link dev.mqnbd.server.NbdServer} binds the listeners, {@link
 * dev.mqnbd.server.ExportRegistry} holds the exports, each an mq-core {@link dev.mqnbd.mq.BlockQueue}
 * opened from a backend spec.
 */
package dev.mqnbd.server;
