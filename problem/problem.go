// Package problem owns Vigil's error replies: RFC 9457 problem details, with an
// "errors" list naming each field at fault. It imports reading for FieldError.
package problem

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"vigil/reading"
)

// ContentType is the media type of every error reply.
const ContentType = "application/problem+json"

// Details is an RFC 9457 problem.
type Details struct {
	Type   string               `json:"type"`
	Title  string               `json:"title"`
	Status int                  `json:"status"`
	Detail string               `json:"detail,omitempty"`
	Errors []reading.FieldError `json:"errors,omitempty"`
}

// typeBase prefixes problem type URIs; they name the problem class and are
// documented in docs/api.md.
const typeBase = "https://vigil.dev/problems/"

// New returns a problem of a class ("validation", "rate-limited", …).
func New(status int, class, title, detail string) Details {
	return Details{Type: typeBase + class, Title: title, Status: status, Detail: detail}
}

// Send writes p. retryAfter, when positive, is sent as Retry-After seconds.
func Send(c *fiber.Ctx, p Details, retryAfter time.Duration) error {
	if retryAfter > 0 {
		secs := int(retryAfter.Round(time.Second) / time.Second)
		if secs < 1 {
			secs = 1
		}
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
	}
	c.Status(p.Status)
	c.Set(fiber.HeaderContentType, ContentType)
	return c.JSON(p, ContentType)
}

// Common problems.
var (
	Unauthorized = func(detail string) Details {
		return New(fiber.StatusUnauthorized, "unauthorized", "Unauthorized", detail)
	}
	Forbidden = func(detail string) Details {
		return New(fiber.StatusForbidden, "forbidden", "Forbidden", detail)
	}
	NotFound = func(detail string) Details {
		return New(fiber.StatusNotFound, "not-found", "Not found", detail)
	}
	BadRequest = func(detail string) Details {
		return New(fiber.StatusBadRequest, "bad-request", "Bad request", detail)
	}
)

// ErrorHandler renders any error that reaches Fiber as a problem, so no reply
// escapes the contract (unknown routes, body limit, panics recovered).
func ErrorHandler(c *fiber.Ctx, err error) error {
	code := fiber.StatusInternalServerError
	if fe, ok := err.(*fiber.Error); ok {
		code = fe.Code
	}
	switch code {
	case fiber.StatusRequestEntityTooLarge:
		return Send(c, New(code, "too-large", "Request body too large", "the body exceeds the size limit"), 0)
	case fiber.StatusNotFound:
		return Send(c, NotFound("no such resource"), 0)
	case fiber.StatusMethodNotAllowed:
		return Send(c, New(code, "method-not-allowed", "Method not allowed", ""), 0)
	case fiber.StatusInternalServerError:
		return Send(c, New(code, "internal", "Internal error", "the server could not complete the request"), 0)
	}
	return Send(c, New(code, "http-"+strconv.Itoa(code), utils.StatusMessage(code), err.Error()), 0)
}
