// fibserver: the talk's Go server, as a peer for make bench.
//
// A goroutine per connection reads a line (bufio) and answers naive fib(n)
// on uint64, the same recursion as fibd's naive algorithm, followed by "\n".
// Bad input gets fibd's error lines, so fibload's checks pass and a wrong
// request never kills the connection. Standard library only.
//
//	gofib -listen 127.0.0.1:0 [-max-n 45] [-max-line 1024]
//
// When ready it prints "gofib: listening on HOST:PORT" to stderr, as fibd
// does, so bench/run finds the port. SIGTERM or SIGINT: close the listener,
// exit 0.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// fib is the talk's exponential recursion: no memo, no loop.
func fib(n uint64) uint64 {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

// reply turns one request line (its "\n" already gone) into a reply line.
func reply(line []byte, maxN uint64) []byte {
	if k := len(line); k > 0 && line[k-1] == '\r' {
		line = line[:k-1]
	}
	for len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		line = line[1:]
	}
	for k := len(line); k > 0 && (line[k-1] == ' ' || line[k-1] == '\t'); k-- {
		line = line[:k-1]
	}
	if len(line) == 0 {
		return []byte("ERR empty request\n")
	}
	neg := line[0] == '-'
	if line[0] == '+' || neg {
		line = line[1:]
	}
	if len(line) == 0 {
		return []byte("ERR not a number\n")
	}
	var n uint64
	for _, c := range line {
		if c < '0' || c > '9' {
			return []byte("ERR not a number\n")
		}
		if n <= maxN {
			n = n*10 + uint64(c-'0')
		}
	}
	if neg {
		return []byte("ERR negative n\n")
	}
	if n > maxN {
		return []byte(fmt.Sprintf("ERR n too large (max %d)\n", maxN))
	}
	return append(strconv.AppendUint(nil, fib(n), 10), '\n')
}

// serve answers one connection until EOF, an error or a line too long.
// Replies are flushed once no more requests are buffered, so a pipelining
// client gets one write per batch, as from fibd.
func serve(c net.Conn, maxN uint64, maxLine int) {
	defer c.Close()
	r := bufio.NewReaderSize(c, maxLine+2)
	w := bufio.NewWriter(c)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull || len(line) > maxLine+1 {
			fmt.Fprintf(w, "ERR line too long (max %d bytes)\n", maxLine)
			w.Flush()
			return
		}
		if err != nil {
			w.Flush()
			return
		}
		if _, err := w.Write(reply(line[:len(line)-1], maxN)); err != nil {
			return
		}
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:25000", "HOST:PORT (port 0: any free port)")
	maxN := flag.Uint64("max-n", 45, "largest n served")
	maxLine := flag.Int("max-line", 1024, "longest request line")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gofib: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gofib: listening on %s (goroutine per connection)\n", ln.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Temporary() {
				// out of descriptors and the like: wait, go on
				time.Sleep(10 * time.Millisecond)
				continue
			}
			os.Exit(0) // the listener was closed by SIGTERM
		}
		go serve(c, *maxN, *maxLine)
	}
}
