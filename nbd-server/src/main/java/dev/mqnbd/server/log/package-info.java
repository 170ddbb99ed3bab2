/** Logging helpers shared by the server's packages: rate-limited lines for events a client can cause at will. */
package dev.mqnbd.server.log;
