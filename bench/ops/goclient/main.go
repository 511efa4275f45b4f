// The benchmark's Go client: times snapshot operations over strata's socket the way containerd issues them (Go
// grpc-go, one HTTP/2 connection), and serves a do-nothing Go gRPC server as the floor of one call on this machine.
//
// It is driven line by line on stdin by bench/ops (one JSON array of microseconds per command on stdout):
//
//	stat KEY N WARMUP                   N Stat calls
//	list N WARMUP EXPECT                N List calls; each must return EXPECT snapshots
//	pc PREFIX PARENT N WARMUP           N × (Prepare PREFIXi-a on PARENT, Commit PREFIXi), labelled like containerd's
//	rm KEY                              one Remove
//	usage KEY N WARMUP                  N Usage calls
//	noop N WARMUP                       N calls to the do-nothing server at -noop SOCKET
//
// `goclient -serve-noop SOCKET` is that server: its own process, as strata is, answering with an empty message.
//
// Requests are encoded by hand (a few fields of containerd's snapshots.proto) so the client needs nothing but
// grpc-go, which Debian packages (golang-google-grpc-dev): no module download, no generated code.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

const service = "/containerd.services.snapshots.v1.Snapshots/"

// rawCodec passes pre-encoded protobuf bytes through; registered under "proto" so the wire format is unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(d []byte, v interface{}) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], d...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func varint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func field(b []byte, num int, val []byte) []byte {
	b = varint(b, uint64(num<<3|2))
	b = varint(b, uint64(len(val)))
	return append(b, val...)
}

func str(b []byte, num int, s string) []byte { return field(b, num, []byte(s)) }

// labels encodes a map<string,string> field as its repeated entry messages.
func labels(b []byte, num int, m [][2]string) []byte {
	for _, kv := range m {
		b = field(b, num, str(str(nil, 1, kv[0]), 2, kv[1]))
	}
	return b
}

// layerLabels matches bench/ops/ops.ts: the labels containerd's unpacker sets on a layer.
func layerLabels(i int) [][2]string {
	return [][2]string{
		{"containerd.io/snapshot.ref", fmt.Sprintf("sha256:%064x", i)},
		{"containerd.io/snapshot/cri.layer-digest", fmt.Sprintf("sha256:%064x", i*7919)},
	}
}

// countField1 counts the top-level occurrences of field 1 (ListSnapshotsResponse.info) in a message.
func countField1(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		tag, k := uvarint(b)
		if k == 0 || tag&7 != 2 {
			return 0, errors.New("unexpected wire type in List response")
		}
		b = b[k:]
		l, k2 := uvarint(b)
		if k2 == 0 || int(l) > len(b)-k2 {
			return 0, errors.New("truncated List response")
		}
		b = b[k2+int(l):]
		if tag>>3 == 1 {
			n++
		}
	}
	return n, nil
}

func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

type client struct{ cc *grpc.ClientConn }

func dial(sock string) (*client, error) {
	cc, err := grpc.Dial("unix://"+sock, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}))
	if err != nil {
		return nil, err
	}
	return &client{cc}, nil
}

func (c *client) unary(method string, req []byte) ([]byte, error) {
	var out []byte
	err := c.cc.Invoke(context.Background(), method, &req, &out)
	return out, err
}

func (c *client) list(expect int) error {
	req := str(nil, 1, "strata")
	st, err := c.cc.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true}, service+"List")
	if err != nil {
		return err
	}
	if err := st.SendMsg(&req); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	total := 0
	for {
		var msg []byte
		if err := st.RecvMsg(&msg); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		n, err := countField1(msg)
		if err != nil {
			return err
		}
		total += n
	}
	if total != expect {
		return fmt.Errorf("List returned %d snapshots, expected %d", total, expect)
	}
	return nil
}

// timeN runs fn warmup times unmeasured, then n times measured (microseconds, as float for sub-µs precision).
func timeN(n, warmup int, fn func(i int) error) ([]float64, error) {
	for i := 0; i < warmup; i++ {
		if err := fn(-1 - i); err != nil {
			return nil, err
		}
	}
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := fn(i); err != nil {
			return nil, err
		}
		out = append(out, float64(time.Since(t0).Nanoseconds())/1000)
	}
	return out, nil
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail(fmt.Errorf("not a number: %q", s))
	}
	return n
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "goclient:", err)
	os.Exit(1)
}

func (c *client) run(args []string, noop *client) ([]float64, error) {
	switch {
	case args[0] == "stat" && len(args) == 4:
		req := str(str(nil, 1, "strata"), 2, args[1])
		return timeN(atoi(args[2]), atoi(args[3]), func(int) error { _, err := c.unary(service+"Stat", req); return err })
	case args[0] == "list" && len(args) == 4:
		expect := atoi(args[3])
		return timeN(atoi(args[1]), atoi(args[2]), func(int) error { return c.list(expect) })
	case args[0] == "pc" && len(args) == 5:
		prefix, parent := args[1], args[2]
		return timeN(atoi(args[3]), atoi(args[4]), func(i int) error {
			key := fmt.Sprintf("%s%d", prefix, i)
			l := layerLabels(5000 + i)
			prep := labels(str(str(str(nil, 1, "strata"), 2, key+"-a"), 3, parent), 4, l)
			if _, err := c.unary(service+"Prepare", prep); err != nil {
				return fmt.Errorf("Prepare %s-a: %w", key, err)
			}
			commit := labels(str(str(str(nil, 1, "strata"), 2, key), 3, key+"-a"), 4, l)
			if _, err := c.unary(service+"Commit", commit); err != nil {
				return fmt.Errorf("Commit %s: %w", key, err)
			}
			return nil
		})
	case args[0] == "usage" && len(args) == 4:
		req := str(str(nil, 1, "strata"), 2, args[1])
		return timeN(atoi(args[2]), atoi(args[3]), func(int) error { _, err := c.unary(service+"Usage", req); return err })
	case args[0] == "rm" && len(args) == 2:
		req := str(str(nil, 1, "strata"), 2, args[1])
		return timeN(1, 0, func(int) error { _, err := c.unary(service+"Remove", req); return err })
	case args[0] == "noop" && len(args) == 3 && noop != nil:
		req := []byte{}
		return timeN(atoi(args[1]), atoi(args[2]), func(int) error { _, err := noop.unary("/bench.Noop/Call", req); return err })
	}
	return nil, fmt.Errorf("unknown command %q", strings.Join(args, " "))
}

// serveNoop answers /bench.Noop/Call with an empty message: the cost of one grpc-go call and nothing else.
func serveNoop(sock string) error {
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "bench.Noop",
		HandlerType: (*interface{})(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Call", Handler: func(_ interface{}, _ context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			out := []byte{}
			return &out, nil
		}}},
	}, struct{}{})
	return s.Serve(l)
}

func main() {
	encoding.RegisterCodec(rawCodec{})
	sock := flag.String("socket", "", "strata's socket")
	noopSock := flag.String("noop", "", "the do-nothing server's socket, for the noop command")
	serve := flag.String("serve-noop", "", "be the do-nothing server on this socket")
	flag.Parse()
	if *serve != "" {
		fail(serveNoop(*serve))
	}
	c, err := dial(*sock)
	if err != nil {
		fail(err)
	}
	var noop *client
	if *noopSock != "" {
		if noop, err = dial(*noopSock); err != nil {
			fail(err)
		}
	}
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		args := strings.Fields(in.Text())
		if len(args) == 0 {
			continue
		}
		us, err := c.run(args, noop)
		if err != nil {
			_ = out.Encode(map[string]string{"error": err.Error()})
			continue
		}
		_ = out.Encode(us)
	}
}
