package gateway

import (
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// Error codes Mandate answers with. Messages are stable and safe to show a
// client: they never carry upstream internals or another client's data.
const (
	codeInvalidParams  = jsonrpc.CodeInvalidParams
	codeMethodNotFound = jsonrpc.CodeMethodNotFound
	codeInternal       = jsonrpc.CodeInternalError
	codeInvalidRequest = jsonrpc.CodeInvalidRequest
)

func rpcError(code int64, msg string) *jsonrpc.Error {
	return &jsonrpc.Error{Code: code, Message: msg}
}

func errorResponse(id jsonrpc.ID, code int64, msg string) *jsonrpc.Response {
	return &jsonrpc.Response{ID: id, Error: rpcError(code, msg)}
}

func resultResponse(id jsonrpc.ID, result any) *jsonrpc.Response {
	return &jsonrpc.Response{ID: id, Result: mustJSON(result)}
}
