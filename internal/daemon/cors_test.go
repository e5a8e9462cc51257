package daemon

import "testing"

func TestValidateOrigins(t *testing.T) {
	for o, ok := range map[string]bool{
		"*": true, "https://app.example.com": true, "http://localhost:3000": true, "http://127.0.0.1:5173/": true,
		"app.example.com": false, "https://app.example.com/path": false, "ftp://x.com": false, "null": false,
		"https://": false, "https://u:p@x.com": false, "https://x.com?q=1": false, "https://x.com:": false,
	} {
		if err := validateOrigins([]string{o}); (err == nil) != ok {
			t.Errorf("validateOrigins(%q) = %v, want ok=%v", o, err, ok)
		}
	}
}
