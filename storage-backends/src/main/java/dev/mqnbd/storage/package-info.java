/**
 * The storage SPI: each backend is a blk-mq driver (an {@link dev.mqnbd.mq.Operations} with its own
 * typed data) that a {@link dev.mqnbd.storage.Backend} opens from an export spec such as {@code
 * memory:1G}. Backends are found with {@link java.util.ServiceLoader} through {@link
 * dev.mqnbd.storage.Backends}.
 */
@NullMarked
package dev.mqnbd.storage;

import org.jspecify.annotations.NullMarked;
