// Include this instead of <asio.hpp>. asio picks aligned_alloc or operator new for its handler memory
// by testing a libstdc++ macro (_GLIBCXX_HAVE_ALIGNED_ALLOC) that exists only once a standard C++ header
// was included; translation units that disagree link one inline aligned_new with another's
// aligned_delete (malloc freed by operator delete, which ASan reports). A standard header first makes
// every file using this one agree.
#pragma once

#include <cstddef>

#include <asio.hpp>
