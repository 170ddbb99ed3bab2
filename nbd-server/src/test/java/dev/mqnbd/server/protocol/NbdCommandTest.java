package dev.mqnbd.server.protocol;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

class NbdCommandTest {
    @ParameterizedTest
    @EnumSource(NbdCommand.class)
    void fromCode_eachCommand(NbdCommand command) {
        assertThat(NbdCommand.fromCode(command.code())).isSameAs(command);
    }

    @ParameterizedTest
    @ValueSource(ints = {-1, 8, 42, 0xffff, Integer.MIN_VALUE})
    void fromCode_unknown_null(int code) {
        assertThat(NbdCommand.fromCode(code)).isNull();
    }

    @Test
    void codes_matchSpec() {
        // proto.md "Request types".
        assertThat(NbdCommand.WRITE_ZEROES.code()).isEqualTo(6);
        assertThat(NbdCommand.BLOCK_STATUS.code()).isEqualTo(7);
        assertThat(NbdError.ESHUTDOWN.code()).isEqualTo(108);
        assertThat(NbdError.EOVERFLOW.code()).isEqualTo(75);
    }
}
