package dev.mqnbd.filter;

/**
 * What a filter is told about the export it is built for.
 *
 * @param export the export's name ({@code ""} for the default export), for logs
 * @param readOnly whether the export is served read-only: a filter that makes the layers below writable
 *     (cow) stays read-only then
 */
public record StackContext(String export, boolean readOnly) {}
