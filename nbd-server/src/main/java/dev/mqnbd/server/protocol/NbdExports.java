package dev.mqnbd.server.protocol;

import java.util.List;

/**
 * The exports the handshake may offer.
 *
 * <p><b>Threading:</b> called from every connection's event loop; implementations must be thread-safe
 * and must not block.
 */
public interface NbdExports {
    /**
     * Returns the export called {@code name}, or {@code null} if there is none. {@code ""} asks for the
     * default export; the implementation decides what that means.
     */
    NbdExportInfo find(String name);

    /** Returns the exports to list in answer to {@code NBD_OPT_LIST}, in order. */
    List<NbdExportInfo> list();
}
