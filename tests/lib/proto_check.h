/*
 * proto_check - the property check behind the protocol fuzzer, shared with
 * the unit test that replays the corpus and every regression input.
 *
 * It frames arbitrary bytes as a server would, and checks every framed line
 * against a reference parser written independently of src/core/proto.c:
 * statuses must agree, replies must be "digits\n" or a known "ERR ...\n",
 * and nothing may be read past the input. The same bytes, cut into reads
 * of max_line, are checked as --framing read requests too. Returns the number
 * of violations (0 when the input is handled correctly); each one is printed.
 */
#ifndef FIBD_TESTS_PROTO_CHECK_H
#define FIBD_TESTS_PROTO_CHECK_H

#include <stddef.h>
#include <stdint.h>

int proto_check_input(const uint8_t *data, size_t size);

#endif
