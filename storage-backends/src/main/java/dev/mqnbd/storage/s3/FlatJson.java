package dev.mqnbd.storage.s3;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The little JSON the S3 backend keeps in its metadata and lease objects: one flat object whose values
 * are strings or numbers. Written so that a person reading the object in a console understands it; read
 * strictly, so that a damaged object is reported rather than half understood.
 */
final class FlatJson {
    private FlatJson() {}

    /** Writes {@code fields} as one JSON object; {@link Number} values bare, everything else as strings. */
    static String write(Map<String, ?> fields) {
        StringBuilder out = new StringBuilder("{");
        for (Map.Entry<String, ?> e : fields.entrySet()) {
            if (out.length() > 1) {
                out.append(", ");
            }
            quote(out, e.getKey());
            out.append(": ");
            if (e.getValue() instanceof Number n) {
                out.append(n);
            } else {
                quote(out, String.valueOf(e.getValue()));
            }
        }
        return out.append("}\n").toString();
    }

    /**
     * Reads one flat JSON object into its fields, every value as text (numbers as written).
     *
     * @throws IllegalArgumentException if the text is not such an object; the message says where
     */
    static Map<String, String> read(String text) {
        Parser p = new Parser(text);
        Map<String, String> fields = new LinkedHashMap<>();
        p.skip();
        p.expect('{');
        p.skip();
        if (p.peek() == '}') {
            p.pos++;
        } else {
            for (; ; ) {
                p.skip();
                String key = p.string();
                p.skip();
                p.expect(':');
                p.skip();
                String value = p.peek() == '"' ? p.string() : p.bare();
                if (fields.put(key, value) != null) {
                    throw p.error("field \"" + key + "\" given twice");
                }
                p.skip();
                char c = p.next();
                if (c == '}') {
                    break;
                }
                if (c != ',') {
                    throw p.error("'" + c + "' (expected: ',' or '}')");
                }
            }
        }
        p.skip();
        if (p.pos != text.length()) {
            throw p.error("text after the object");
        }
        return fields;
    }

    private static void quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    private static final class Parser {
        final String text;
        int pos;

        Parser(String text) {
            this.text = text;
        }

        char peek() {
            if (pos >= text.length()) {
                throw error("unexpected end");
            }
            return text.charAt(pos);
        }

        char next() {
            char c = peek();
            pos++;
            return c;
        }

        void skip() {
            while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
                pos++;
            }
        }

        void expect(char c) {
            char got = next();
            if (got != c) {
                pos--;
                throw error("'" + got + "' (expected: '" + c + "')");
            }
        }

        String string() {
            expect('"');
            StringBuilder out = new StringBuilder();
            for (; ; ) {
                char c = next();
                if (c == '"') {
                    return out.toString();
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char esc = next();
                switch (esc) {
                    case '"', '\\', '/' -> out.append(esc);
                    case 'n' -> out.append('\n');
                    case 't' -> out.append('\t');
                    case 'r' -> out.append('\r');
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'u' -> {
                        if (pos + 4 > text.length()) {
                            throw error("short \\u escape");
                        }
                        try {
                            out.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
                        } catch (NumberFormatException e) {
                            throw error("bad \\u escape");
                        }
                        pos += 4;
                    }
                    default -> throw error("bad escape \\" + esc);
                }
            }
        }

        String bare() {
            int start = pos;
            while (pos < text.length() && "0123456789+-.eEtruefalsn".indexOf(text.charAt(pos)) >= 0) {
                pos++;
            }
            if (start == pos) {
                throw error("a value (expected: a string or a number)");
            }
            return text.substring(start, pos);
        }

        IllegalArgumentException error(String what) {
            return new IllegalArgumentException("at character " + pos + ": " + what);
        }
    }
}
