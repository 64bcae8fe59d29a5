package line

import "testing"

func TestMACs(t *testing.T) {
	key := []byte("classroom secret")
	m, c := NewNonce(), NewNonce()
	if !ValidNonce(m) || m == c {
		t.Fatalf("nonces %q %q", m, c)
	}
	cm := ClientMAC(key, "server", m, c)
	tests := []struct {
		name string
		got  string
		same bool
	}{
		{"same inputs", ClientMAC(key, "server", m, c), true},
		{"other key", ClientMAC([]byte("guess"), "server", m, c), false},
		{"other role", ClientMAC(key, "client", m, c), false},
		{"other nonce", ClientMAC(key, "server", NewNonce(), c), false},
		{"swapped nonces", ClientMAC(key, "server", c, m), false},
		{"master label", MasterMAC(key, m, c), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if EqualMAC(cm, tt.got) != tt.same {
				t.Errorf("EqualMAC = %v, want %v", !tt.same, tt.same)
			}
		})
	}
	for _, bad := range []string{"", "abc", "ABCDEF0123456789", "0123456789abcdeg", string(make([]byte, 65))} {
		if ValidNonce(bad) {
			t.Errorf("ValidNonce(%q) = true", bad)
		}
	}
}
