/*
 * switch.S - the context switch between coroutines and worker threads.
 *
 * void coro__switch(void **save, void *sp)
 *
 * Pushes what the System V ABI says a callee must preserve (rbx, rbp,
 * r12-r15, and the SSE/x87 control words mxcsr and the FPU control word),
 * stores the resulting stack pointer in *save, loads sp and pops the same
 * frame from there. The return address is already on the stack, so "ret"
 * resumes the other side. Everything else is caller-saved, so the C
 * compiler has already spilled what it needs: that is why this is ~20
 * instructions and no system call, unlike glibc's swapcontext, which also
 * saves the signal mask with rt_sigprocmask.
 *
 * Frame, from the new stack pointer up:
 *   0: mxcsr (4 bytes), fpu cw (2 bytes), pad   8: r15   16: r14
 *  24: r13   32: r12   40: rbx   48: rbp   56: return address
 * sched.c builds this frame by hand for a fresh stack (see stack_frame()).
 */
	.text
	.globl	coro__switch
	.type	coro__switch, @function
	.p2align 4
coro__switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	coro__switch, .-coro__switch

/*
 * A fresh coroutine "returns" here from its first switch, with the stack
 * 16-byte aligned as the ABI wants before a call. r12 holds the argument
 * and r13 the entry function, which never returns.
 */
	.globl	coro__trampoline
	.type	coro__trampoline, @function
	.p2align 4
coro__trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r12, %rdi
	callq	*%r13
	ud2
	.cfi_endproc
	.size	coro__trampoline, .-coro__trampoline

	.section .note.GNU-stack,"",@progbits
