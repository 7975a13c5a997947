// Package urlerr keeps URLs out of the errors Mandate logs and records.
// net/http wraps every client error in a *url.Error that quotes the full
// URL, and some URLs Mandate calls carry secrets in their path or query
// (chat webhooks, a PDP address given by reference), which must never
// reach a log line.
package urlerr

import (
	"errors"
	"fmt"
	"net/url"
)

// Strip returns err with the URL of any *url.Error in it left out: the
// operation and the cause stay ("Post: context deadline exceeded"), so
// the error still says what went wrong. A nil err stays nil.
func Strip(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("%s: %w", ue.Op, ue.Err)
}
