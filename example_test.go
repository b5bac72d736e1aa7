package paybound_test

import (
	"fmt"

	pb "github.com/paybound/paybound"
)

func ExampleParseAmount() {
	usd, _ := pb.ParseAmount("12.50", "USD")
	jpy, _ := pb.ParseAmount("500", "JPY")
	_, err := pb.ParseAmount("0.001", "USD")
	fmt.Println(usd, jpy)
	fmt.Println(pb.ErrorCode(err))
	// Output:
	// 1250 500
	// invalid_amount
}

func ExampleFormatAmount() {
	fmt.Println(pb.FormatAmount(1250, "USD"), pb.FormatAmount(500, "JPY"), pb.FormatAmount(1234, "KWD"))
	// Output: 12.50 500 1.234
}
