// The Go peer: one goroutine per connection, blocking-style Read / uppercase / Write until EOF
// (the runtime multiplexes the goroutines over epoll). Go sets TCP_NODELAY on accepted
// connections and uses the kernel's largest listen backlog by default.
//
// Usage: go_server PORT [--port-file FILE]   (127.0.0.1 only; PORT 0 picks a free port)
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// upperTable maps each byte to its ASCII uppercase form: a table lookup has no data-dependent
// branch, so mixed-case input costs what any other input costs (an `if c >= 'a'` loop
// mispredicts on about every other byte of it).
var upperTable [256]byte

func init() {
	for i := range upperTable {
		upperTable[i] = byte(i)
		if i >= 'a' && i <= 'z' {
			upperTable[i] = byte(i - ('a' - 'A'))
		}
	}
}

// upper turns ASCII a-z into A-Z in place; every other byte is unchanged (bytes.ToUpper would
// decode UTF-8 and replace invalid bytes).
func upper(b []byte) {
	for i, c := range b {
		b[i] = upperTable[c]
	}
}

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			upper(buf[:n])
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF once everything was answered, or a reset
		}
	}
}

func writePortFile(path string, port int) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d\n", port)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func main() {
	args := os.Args[1:]
	if !(len(args) == 1 || (len(args) == 3 && args[1] == "--port-file")) {
		args = nil
	}
	port, perr := strconv.ParseUint(append(args, "")[0], 10, 16)
	if perr != nil {
		fmt.Fprintln(os.Stderr, "usage: go_server PORT [--port-file FILE]")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_server: %v\n", err)
		os.Exit(1)
	}
	if len(args) == 3 {
		if err := writePortFile(args[2], ln.Addr().(*net.TCPAddr).Port); err != nil {
			fmt.Fprintf(os.Stderr, "go_server: --port-file: %v\n", err)
			os.Exit(1)
		}
	}
	// Out of descriptors: back off as net/http does, so a full fd table is not a busy loop.
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if delay = 2*delay + 5*time.Millisecond; delay > time.Second {
				delay = time.Second
			}
			fmt.Fprintf(os.Stderr, "go_server: accept: %v; retrying in %v\n", err, delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go serve(c)
	}
}
