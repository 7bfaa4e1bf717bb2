// Raw little-endian array files for the test drivers (kernel_driver.cpp, kmedoids_driver.cpp), which run a
// kernel as a program so that a build for another architecture can run under an emulator.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

template <class T>
std::vector<T> read_all(const std::string& path) {
    std::vector<T> values;
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return values;
    T v;
    while (std::fread(&v, sizeof v, 1, f) == 1) values.push_back(v);
    std::fclose(f);
    return values;
}

template <class T>
bool write_all(const std::string& path, const std::vector<T>& values) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return false;
    const bool ok = std::fwrite(values.data(), sizeof(T), values.size(), f) == values.size();
    return std::fclose(f) == 0 && ok;
}
