package dev.mqnbd.server.protocol;

import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * The exports the handshake may offer, and to whom.
 *
 * <p>A client that {@link #allows} refuses learns nothing about the export: {@code NBD_OPT_LIST} omits it,
 * {@code NBD_OPT_INFO}, {@code NBD_OPT_GO} and the metadata-context options answer {@code
 * NBD_REP_ERR_UNKNOWN} exactly as for a missing export, and {@code NBD_OPT_EXPORT_NAME} closes the
 * connection.
 *
 * <p><b>Threading:</b> called from every connection's event loop; implementations must be thread-safe
 * and must not block.
 */
public interface NbdExports {
    /**
     * Returns the export called {@code name}, or {@code null} if there is none. {@code ""} asks for the
     * default export; the implementation decides what that means.
     */
    @Nullable
    NbdExportInfo find(String name);

    /** Returns the exports to list in answer to {@code NBD_OPT_LIST}, in order. */
    List<NbdExportInfo> list();

    /**
     * Returns whether {@code peer} may see and use {@code export}, one of those {@link #find} or {@link #list}
     * returned. The default allows everyone.
     */
    default boolean allows(NbdExportInfo export, NbdPeer peer) {
        return true;
    }
}
