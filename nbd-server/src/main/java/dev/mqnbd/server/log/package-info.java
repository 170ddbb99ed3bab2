/** Logging helpers shared by the server's packages: rate-limited lines for events a client can cause at will. */
@NullMarked
package dev.mqnbd.server.log;

import org.jspecify.annotations.NullMarked;
