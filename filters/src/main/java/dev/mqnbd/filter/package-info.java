/**
 * Filters: layers stacked between the NBD front end and a backend, each a blk-mq driver ({@link
 * dev.mqnbd.mq.Operations}) that wraps the next, as nbdkit's filters wrap {@code next}. {@link
 * dev.mqnbd.filter.Filter} is the base every filter extends; {@link dev.mqnbd.filter.Filters#open} builds
 * every export, filters or none; {@link dev.mqnbd.filter.FilterKind} is what the command line's {@code
 * --filter} names.
 */
@NullMarked
package dev.mqnbd.filter;

import org.jspecify.annotations.NullMarked;
