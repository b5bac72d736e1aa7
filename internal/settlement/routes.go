package settlement

import (
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
)

// Routes are the settlement report's part of the REST API.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{{Method: "GET", Pattern: "/v1/reports/settlement", Handler: s.report}}
}

func (s *Service) report(q *rest.Request) (int, any, error) {
	format := q.Query("format")
	if format != "" && format != "json" && format != "csv" {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "format", "format must be json or csv")
	}
	var bounds [2]time.Time
	for i, name := range []string{"from", "to"} {
		if v := q.Query(name); v != "" {
			t, err := rest.ParseTime(&v, name)
			if err != nil {
				return 0, nil, err
			}
			bounds[i] = t
		}
	}
	rep, err := s.Report(q.Ctx, q.Caller, bounds[0], bounds[1])
	if err != nil || format != "csv" {
		return 200, rep, err
	}
	b, err := CSV(rep)
	if err != nil {
		return 0, nil, err
	}
	name := "settlement_" + rep.MerchantID + "_" + rep.From.Format("20060102T150405Z") + "_" + rep.To.Format("20060102T150405Z") + ".csv"
	return 200, rest.Raw{ContentType: "text/csv; charset=utf-8; header=present", Body: b,
		Header: map[string]string{"Content-Disposition": `attachment; filename="` + name + `"`}}, nil
}
