package dev.mqnbd.server.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import javax.security.auth.x500.X500Principal;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class SubjectPatternTest {
    private static final X500Principal ALICE = new X500Principal("CN=alice,OU=Storage,O=Example Corp,C=DE");

    @ParameterizedTest
    @CsvSource(
            delimiter = ';',
            value = {
                "alice; true",
                "Alice; false",
                "ali; false",
                "Storage; false",
                "CN=alice,OU=Storage,O=Example Corp,C=DE; true",
                "cn=alice, ou=Storage, o=Example Corp, c=DE; true",
                "CN=ALICE,OU=storage,O=example corp,C=de; true",
                "CN=alice; false",
                "CN=alice,OU=Storage,O=Example Corp,C=FR; false",
            })
    void matches(String pattern, boolean expected) {
        assertThat(SubjectPattern.parse(pattern).matches(ALICE)).as(pattern).isEqualTo(expected);
    }

    @Test
    void commonName_matchesAnyCnOfTheSubject_withSpecialCharacters() {
        X500Principal twoCns = new X500Principal("CN=backup\\, nightly,CN=bob,O=x");

        assertThat(SubjectPattern.parse("bob").matches(twoCns)).isTrue();
        assertThat(SubjectPattern.parse("backup, nightly").matches(twoCns)).isTrue();
        assertThat(SubjectPattern.parse("backup").matches(twoCns)).isFalse();
        assertThat(SubjectPattern.parse("CN=backup\\, nightly,CN=bob,O=x").matches(twoCns))
                .isTrue();
    }

    @Test
    void parse_rejectsEmptyAndBadNames() {
        assertThatThrownBy(() -> SubjectPattern.parse(" ")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> SubjectPattern.parse("CN=a,=b"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("CN=a,=b");
    }

    @Test
    void toString_saysWhatItMatches() {
        assertThat(SubjectPattern.parse("alice")).hasToString("CN alice");
        assertThat(SubjectPattern.parse("CN=alice, O=Example")).hasToString("CN=alice,O=Example");
    }
}
