/*
 * libFuzzer harness for the request path: framing, parsing and replies.
 * The checks live in tests/lib/proto_check.c, so the unit tests replay the
 * corpus and every regression input through exactly the same code.
 *
 *   make fuzz FUZZ_SECONDS=600
 */
#include <stdlib.h>

#include "../tests/lib/proto_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (proto_check_input(data, size))
		abort(); /* a property failed: libFuzzer saves the input */
	return 0;
}
