package policy

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// schemaFile is the name the shipped schema is known by in problems.
const schemaFile = "mandate.cedarschema"

//go:embed mandate.cedarschema
var schemaSource []byte

// Schema returns the Cedar schema every policy file is validated against, in
// Cedar's human-readable schema format.
func Schema() []byte { return append([]byte(nil), schemaSource...) }

// shippedSchema is the resolved schema; a Validator is built from it per
// Compile so that no mutable validator state is shared between reloads.
var shippedSchema = sync.OnceValues(func() (*resolved.Schema, error) {
	var s schema.Schema
	s.SetFilename(schemaFile)
	if err := s.UnmarshalCedar(schemaSource); err != nil {
		return nil, fmt.Errorf("parse %s: %w", schemaFile, err)
	}
	r, err := s.Resolve()
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", schemaFile, err)
	}
	return r, nil
})

func newValidator() (*validate.Validator, error) {
	r, err := shippedSchema()
	if err != nil {
		return nil, err
	}
	return validate.New(r, validate.WithStrict()), nil
}
