// llama.cpp's own `-hf` path, end to end, for the hub tests: the listing calls, the choice of files
// and (with --download) the downloads into the hub cache, exactly as llama-cli does them.
// usage: llama-hf-plan <owner/repo[:tag]> [--file PATH] [--no-mmproj] [--offline] [--download]
// Prints one JSON object: the chosen repository paths and, after --download, the local paths.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "common.h"
#include "download.h"
#include "hf-cache.h"
#include "log.h"
#include "json.h"

int main(int argc, char ** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <owner/repo[:tag]> [--file PATH] [--no-mmproj] [--offline] [--download]\n", argv[0]);
        return 2;
    }
    common_params_model model;
    model.hf_repo = argv[1];
    common_download_opts opts;
    opts.download_mmproj = true;
    bool download = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--file") && i + 1 < argc) model.hf_file = argv[++i];
        else if (!strcmp(argv[i], "--no-mmproj")) opts.download_mmproj = false;
        else if (!strcmp(argv[i], "--offline")) opts.offline = true;
        else if (!strcmp(argv[i], "--download")) download = true;
    }
    if (const char * t = getenv("HF_TOKEN")) opts.bearer_token = t;

    common_json out;
    try {
        auto plan = common_download_get_hf_plan(model, opts);
        auto or_null = [](const hf_cache::hf_file & f) -> common_json { return f.path.empty() ? common_json() : common_json(f.path); };
        out["primary"] = or_null(plan.primary);
        out["modelFiles"] = common_json::array();
        for (auto & f : plan.model_files) out["modelFiles"].push_back(f.path);
        out["mmproj"] = or_null(plan.mmproj);
        out["preset"] = or_null(plan.preset);
        if (download) {
            std::vector<common_download_task> tasks;
            for (auto & f : plan.model_files) tasks.emplace_back(f, opts);
            if (!plan.mmproj.path.empty()) tasks.emplace_back(plan.mmproj, opts);
            common_download_run_tasks(tasks);
            for (auto & f : plan.model_files) {
                auto p = hf_cache::finalize_file(f);
                if (f.path == plan.primary.path) out["modelPath"] = p;
            }
            if (!plan.mmproj.path.empty()) out["mmprojPath"] = hf_cache::finalize_file(plan.mmproj);
        }
    } catch (const std::exception & e) {
        out["error"] = e.what();
    }
    printf("%s\n", out.dump().c_str());
    return out.contains("error") ? 1 : 0;
}
