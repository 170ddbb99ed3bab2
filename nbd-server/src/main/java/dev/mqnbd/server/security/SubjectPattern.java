package dev.mqnbd.server.security;

import java.util.Objects;
import javax.naming.InvalidNameException;
import javax.naming.NamingEnumeration;
import javax.naming.NamingException;
import javax.naming.directory.Attribute;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;
import javax.security.auth.x500.X500Principal;
import org.jspecify.annotations.Nullable;

/**
 * Which client certificates a rule admits: a whole distinguished name ({@code CN=alice,O=Example Corp},
 * compared as X.500 names are, ignoring case and spacing) or, when the text has no {@code =}, a common name
 * ({@code alice}: any subject whose {@code CN} is exactly that).
 *
 * <p><b>Threading:</b> immutable.
 */
public final class SubjectPattern {
    private final String text;
    private final @Nullable X500Principal name;
    private final @Nullable String commonName;

    private SubjectPattern(String text, @Nullable X500Principal name, @Nullable String commonName) {
        this.text = text;
        this.name = name;
        this.commonName = commonName;
    }

    /**
     * Parses a distinguished name (RFC 4514, e.g. {@code CN=alice,O=Example}) or a bare common name.
     *
     * @throws IllegalArgumentException if the text is empty or is not a valid distinguished name
     */
    public static SubjectPattern parse(String text) {
        String t = text.strip();
        if (t.isEmpty()) {
            throw new IllegalArgumentException("subject: empty (expected: a DN like CN=alice,O=Example, or a CN)");
        }
        if (t.indexOf('=') < 0) {
            return new SubjectPattern(t, null, t);
        }
        try {
            return new SubjectPattern(t, new X500Principal(t), null);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                    "subject: " + t + " (expected: a DN like CN=alice,O=Example): " + e.getMessage(), e);
        }
    }

    /** Returns whether a certificate with {@code subject} is admitted. */
    public boolean matches(X500Principal subject) {
        Objects.requireNonNull(subject, "subject");
        if (name != null) {
            return name.equals(subject);
        }
        String wanted = Objects.requireNonNull(commonName); // set whenever name is not
        try {
            for (Rdn rdn : new LdapName(subject.getName(X500Principal.RFC2253)).getRdns()) {
                Attribute cn = rdn.toAttributes().get("CN");
                if (cn == null) {
                    continue;
                }
                NamingEnumeration<?> values = cn.getAll();
                while (values.hasMore()) {
                    if (wanted.equals(String.valueOf(values.next()))) {
                        return true;
                    }
                }
            }
        } catch (InvalidNameException e) {
            return false;
        } catch (NamingException e) {
            return false;
        }
        return false;
    }

    @Override
    public String toString() {
        return name != null ? name.getName() : "CN " + text;
    }
}
