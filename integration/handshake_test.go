package integration

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestAuthFrameInTheUpgradePacket: a client that sends its auth frame in the
// same write as its upgrade request (RFC 6455 asks it to wait for the 101,
// but not every client does) must still be served: the bytes fasthttp read
// ahead of the hijack reach the hub.
func TestAuthFrameInTheUpgradePacket(t *testing.T) {
	n := start(t, tempDB(t))
	addr := strings.TrimPrefix(n.base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	auth, _ := json.Marshal(map[string]any{"type": "auth", "token": staffToken(t, "pi", []string{"T008"}, "T008/S01")})
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write(append([]byte(req), maskedText(auth)...)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		t.Fatalf("handshake: %q, %v", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	// The first frame must be ready (unmasked text, length < 126).
	h := make([]byte, 2)
	if _, err := br.Read(h[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Read(h[1:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != 0x81 || h[1] >= 126 {
		t.Fatalf("first frame header % x, want a short text frame", h)
	}
	payload := make([]byte, h[1])
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(payload), `"type":"ready"`) {
		t.Fatalf("first frame %s, want ready", payload)
	}
}

func maskedText(p []byte) []byte {
	b := []byte{0x81}
	if len(p) < 126 {
		b = append(b, 0x80|byte(len(p)))
	} else {
		b = append(b, 0x80|126, byte(len(p)>>8), byte(len(p)))
	}
	key := []byte{7, 1, 9, 4}
	b = append(b, key...)
	for i, c := range p {
		b = append(b, c^key[i%4])
	}
	return b
}
