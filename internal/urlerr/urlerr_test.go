package urlerr

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestStripLeavesNoURL(t *testing.T) {
	const secret = "T000-B000-hooksecret"
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/services/"+secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = http.DefaultClient.Do(req.WithContext(ctx))
	if err == nil || !strings.Contains(err.Error(), secret) {
		t.Fatalf("precondition: the client's error quotes the URL: %v", err)
	}
	got := Strip(err)
	if strings.Contains(got.Error(), secret) || !errors.Is(got, context.Canceled) {
		t.Errorf("Strip = %v", got)
	}
	if Strip(nil) != nil {
		t.Error("Strip(nil) != nil")
	}
	plain := errors.New("plain")
	if Strip(plain) != plain {
		t.Error("an error without a URL changed")
	}
}
